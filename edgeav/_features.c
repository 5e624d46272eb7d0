/* edgeav._features: the per-frame part of edgeav.features.extract in one pass, in C.
 *
 * For each frame of a (padded) signal: window, real FFT, power spectrum, then the mel
 * filter bank, the raw chroma products and spectral contrast's band peaks and valleys, all
 * while the frame's spectrum is in the L1 cache. edgeav/features.py does the rest (logarithms,
 * chroma normalisation, the DCT, statistics) in NumPy, and falls back to NumPy for all of it
 * when this module is missing (no compiler at install time, EDGEAV_FEATURES=numpy).
 *
 * LANES frames are transformed together, one frame per SIMD lane, with GCC/Clang vector
 * extensions: every loop body below is a vector operation across frames, so the code is the
 * same scalar FFT for each frame (results do not depend on the instruction set). Contraction
 * into FMA is disabled at build time (-ffp-contract=off) for the same reason.
 *
 * Everything is float64. Tables (window, twiddles, filter banks, bands) come from Python and
 * are checked here against each other before use; the caller's buffers are read and written
 * only within the lengths they declare. The GIL is released during the computation.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 8
#define QMAX 16 /* widest quantile (values per side) a contrast band may average here */

typedef double vd __attribute__((vector_size(LANES * sizeof(double))));
typedef int64_t vl __attribute__((vector_size(LANES * sizeof(double))));

/* Runtime dispatch on x86-64 Linux (GCC): the same code built for AVX-512, AVX2 and the
 * baseline, chosen once when the module loads. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    defined(__GLIBC__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

static inline vd vmin(vd a, vd b) {
    const vl m = a < b;
    return (vd)((m & (vl)a) | (~m & (vl)b));
}
static inline vd vmax(vd a, vd b) {
    const vl m = a > b;
    return (vd)((m & (vl)a) | (~m & (vl)b));
}

typedef struct {
    const double *x;
    Py_ssize_t n_frames, hop, n_fft;
    const double *window;
    const double *twr, *twi; /* M/2 twiddles exp(-2 pi i k / M) of the M = n_fft/2 point FFT */
    const double *rtr, *rti; /* M + 1 twiddles exp(-2 pi i k / n_fft) of the real split */
    const int32_t *bitrev;   /* M: bit-reversed index */
    Py_ssize_t n_mels;
    const int32_t *mel_lo, *mel_hi, *mel_off; /* filter m: bins [lo, hi), weights at off */
    const double *mel_w;
    Py_ssize_t n_chroma;
    const double *chroma; /* n_chroma x n_bins, row-major */
    Py_ssize_t n_bands;
    const int32_t *band_lo, *band_hi, *band_q;
    double *mel_out, *chroma_out, *peak_out, *valley_out; /* frames-first, row-major */
    vd *work;                                             /* 3 M + 1 vectors */
} Args;

CLONES static void frame_group(const Args *a, Py_ssize_t f0, int lanes) {
    const Py_ssize_t M = a->n_fft / 2, n_bins = M + 1;
    vd *zr = a->work, *zi = zr + M, *P = zi + M;

    /* Load: window, pack even/odd samples as real/imaginary parts, bit-reverse. Lanes past the
     * last frame repeat frame f0 (computed, never stored). */
    const double *src[LANES];
    for (int l = 0; l < LANES; l++) src[l] = a->x + (f0 + (l < lanes ? l : 0)) * a->hop;
    for (Py_ssize_t n = 0; n < M; n++) {
        const int32_t r = a->bitrev[n];
        const double w0 = a->window[2 * n], w1 = a->window[2 * n + 1];
        for (int l = 0; l < LANES; l++) {
            zr[r][l] = src[l][2 * n] * w0;
            zi[r][l] = src[l][2 * n + 1] * w1;
        }
    }

    /* M-point complex FFT, radix-2 decimation in time. */
    for (Py_ssize_t len = 2; len <= M; len <<= 1) {
        const Py_ssize_t half = len >> 1, step = M / len;
        for (Py_ssize_t i = 0; i < M; i += len) {
            for (Py_ssize_t j = 0; j < half; j++) {
                const double wr = a->twr[j * step], wi = a->twi[j * step];
                const vd br = zr[i + j + half], bi = zi[i + j + half];
                const vd tr = br * wr - bi * wi, ti = br * wi + bi * wr;
                const vd ar = zr[i + j], ai = zi[i + j];
                zr[i + j + half] = ar - tr;
                zi[i + j + half] = ai - ti;
                zr[i + j] = ar + tr;
                zi[i + j] = ai + ti;
            }
        }
    }

    /* Real spectrum from the packed one, X[k] = E[k] + exp(-2 pi i k / N) O[k], as power. */
    P[0] = (zr[0] + zi[0]) * (zr[0] + zi[0]);
    P[M] = (zr[0] - zi[0]) * (zr[0] - zi[0]);
    for (Py_ssize_t k = 1; k < M; k++) {
        const double cr = a->rtr[k], ci = a->rti[k];
        const vd ar = zr[k], ai = zi[k], br = zr[M - k], bi = -zi[M - k];
        const vd er = 0.5 * (ar + br), ei = 0.5 * (ai + bi);
        const vd orr = 0.5 * (ai - bi), oi = -0.5 * (ar - br);
        const vd xr = er + (cr * orr - ci * oi);
        const vd xi = ei + (cr * oi + ci * orr);
        P[k] = xr * xr + xi * xi;
    }

    /* Mel filter bank: each filter's few bins. */
    for (Py_ssize_t m = 0; m < a->n_mels; m++) {
        vd acc = {0};
        const double *w = a->mel_w + a->mel_off[m] - a->mel_lo[m];
        for (int32_t b = a->mel_lo[m]; b < a->mel_hi[m]; b++) acc += w[b] * P[b];
        for (int l = 0; l < lanes; l++) a->mel_out[(f0 + l) * a->n_mels + m] = acc[l];
    }

    /* Chroma products, four rows at a time (independent sums, so the additions overlap). */
    Py_ssize_t c = 0;
    for (; c + 4 <= a->n_chroma; c += 4) {
        vd s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
        const double *w0 = a->chroma + c * n_bins, *w1 = w0 + n_bins, *w2 = w1 + n_bins,
                     *w3 = w2 + n_bins;
        for (Py_ssize_t b = 0; b < n_bins; b++) {
            const vd p = P[b];
            s0 += w0[b] * p;
            s1 += w1[b] * p;
            s2 += w2[b] * p;
            s3 += w3[b] * p;
        }
        for (int l = 0; l < lanes; l++) {
            double *o = a->chroma_out + (f0 + l) * a->n_chroma + c;
            o[0] = s0[l];
            o[1] = s1[l];
            o[2] = s2[l];
            o[3] = s3[l];
        }
    }
    for (; c < a->n_chroma; c++) {
        vd s = {0};
        const double *w = a->chroma + c * n_bins;
        for (Py_ssize_t b = 0; b < n_bins; b++) s += w[b] * P[b];
        for (int l = 0; l < lanes; l++) a->chroma_out[(f0 + l) * a->n_chroma + c] = s[l];
    }

    /* Spectral contrast: per band the mean magnitude of its q lowest and q highest bins, in
     * power units (one value per side: the minimum and maximum power). */
    for (Py_ssize_t k = 0; k < a->n_bands; k++) {
        const int32_t lo = a->band_lo[k], hi = a->band_hi[k], q = a->band_q[k];
        vd valley, peak;
        if (q == 1) {
            vd mn0 = P[lo], mx0 = P[lo], mn1 = P[lo], mx1 = P[lo];
            int32_t b = lo + 1;
            for (; b + 1 < hi; b += 2) {
                mn0 = vmin(mn0, P[b]);
                mx0 = vmax(mx0, P[b]);
                mn1 = vmin(mn1, P[b + 1]);
                mx1 = vmax(mx1, P[b + 1]);
            }
            if (b < hi) {
                mn0 = vmin(mn0, P[b]);
                mx0 = vmax(mx0, P[b]);
            }
            valley = vmin(mn0, mn1);
            peak = vmax(mx0, mx1);
        } else {
            /* the q smallest (low[0] <= low[1] <= ...) and q largest, by insertion */
            vd low[QMAX], high[QMAX];
            for (int j = 0; j < q; j++) {
                low[j] = P[lo] * 0.0 + INFINITY;
                high[j] = -low[j];
            }
            for (int32_t b = lo; b < hi; b++) {
                vd v = P[b], u = P[b];
                for (int j = 0; j < q; j++) {
                    const vd t = vmin(low[j], v);
                    v = vmax(low[j], v);
                    low[j] = t;
                    const vd s = vmax(high[j], u);
                    u = vmin(high[j], u);
                    high[j] = s;
                }
            }
            vd sl = {0}, sh = {0};
            for (int j = 0; j < q; j++)
                for (int l = 0; l < LANES; l++) {
                    sl[l] += sqrt(low[j][l]);
                    sh[l] += sqrt(high[j][l]);
                }
            sl /= (double)q;
            sh /= (double)q;
            valley = sl * sl;
            peak = sh * sh;
        }
        for (int l = 0; l < lanes; l++) {
            a->valley_out[(f0 + l) * a->n_bands + k] = valley[l];
            a->peak_out[(f0 + l) * a->n_bands + k] = peak[l];
        }
    }
}

/* the buffer arguments, in order */
enum { X, WINDOW, TWR, TWI, RTR, RTI, BITREV, MEL_LO, MEL_HI, MEL_OFF, MEL_W, CHROMA, BAND_LO,
       BAND_HI, BAND_Q, MEL_OUT, CHROMA_OUT, PEAK_OUT, VALLEY_OUT, N_BUFFERS };

static int fail(const char *msg) {
    PyErr_Format(PyExc_ValueError, "edgeav._features.frames: %s", msg);
    return -1;
}

#define N_OF(i, size) (b[i].len / (Py_ssize_t)(size))

/* Every index the computation uses stays inside the buffers it reads or writes. */
static int check(const Args *a, const Py_buffer *b) {
    const Py_ssize_t N = a->n_fft, M = N / 2, n_bins = M + 1;
    for (int i = 0; i < N_BUFFERS; i++)
        if (b[i].len % (i == BITREV || i == MEL_LO || i == MEL_HI || i == MEL_OFF ||
                                i == BAND_LO || i == BAND_HI || i == BAND_Q
                            ? 4
                            : 8))
            return fail("a buffer's size is not a whole number of items");
    if (N < 16 || (N & (N - 1))) return fail("n_fft must be a power of two >= 16");
    if (a->n_frames < 1 || a->hop < 1) return fail("n_frames and hop must be positive");
    if (N_OF(X, 8) < N || (a->n_frames - 1) > (N_OF(X, 8) - N) / a->hop)
        return fail("x is shorter than n_frames frames");
    if (N_OF(TWR, 8) != M / 2 || N_OF(TWI, 8) != M / 2) return fail("bad FFT twiddles");
    if (N_OF(RTR, 8) != M + 1 || N_OF(RTI, 8) != M + 1) return fail("bad split twiddles");
    if (N_OF(BITREV, 4) != M) return fail("bad bit-reversal table");
    for (Py_ssize_t n = 0; n < M; n++)
        if (a->bitrev[n] < 0 || a->bitrev[n] >= M) return fail("bad bit-reversal table");
    if (N_OF(MEL_HI, 4) != a->n_mels || N_OF(MEL_OFF, 4) != a->n_mels) return fail("bad mel tables");
    for (Py_ssize_t m = 0; m < a->n_mels; m++) {
        const int32_t lo = a->mel_lo[m], hi = a->mel_hi[m], off = a->mel_off[m];
        if (lo < 0 || hi < lo || hi > n_bins || off < 0 || off + (Py_ssize_t)(hi - lo) > N_OF(MEL_W, 8))
            return fail("bad mel tables");
    }
    if (a->n_chroma < 1 || N_OF(CHROMA, 8) != a->n_chroma * n_bins) return fail("bad chroma basis");
    if (a->n_bands < 1 || N_OF(BAND_HI, 4) != a->n_bands || N_OF(BAND_Q, 4) != a->n_bands)
        return fail("bad contrast bands");
    for (Py_ssize_t k = 0; k < a->n_bands; k++) {
        const int32_t lo = a->band_lo[k], hi = a->band_hi[k], q = a->band_q[k];
        if (lo < 0 || hi <= lo || hi > n_bins || q < 1 || q > QMAX || q > hi - lo)
            return fail("bad contrast bands");
    }
    if (N_OF(MEL_OUT, 8) != a->n_frames * a->n_mels ||
        N_OF(CHROMA_OUT, 8) != a->n_frames * a->n_chroma ||
        N_OF(PEAK_OUT, 8) != a->n_frames * a->n_bands ||
        N_OF(VALLEY_OUT, 8) != a->n_frames * a->n_bands)
        return fail("bad output buffers");
    return 0;
}

PyDoc_STRVAR(frames_doc,
             "frames(x, n_frames, hop, window, twr, twi, rtr, rti, bitrev, mel_lo, mel_hi, "
             "mel_off, mel_w, chroma, band_lo, band_hi, band_q, mel_out, chroma_out, peak_out, "
             "valley_out) -> n_frames\n\n"
             "Private to edgeav.features: C-contiguous float64 (int32 for the index tables) "
             "buffers; see edgeav/_features.c.");

static PyObject *frames(PyObject *self, PyObject *args) {
    Py_buffer b[N_BUFFERS];
    Py_ssize_t n_frames, hop;
    PyObject *result = NULL;
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "y*nn" "y*y*y*y*y*y*y*" "y*y*y*y*y*y*y*" "w*w*w*w*", &b[X], &n_frames,
                          &hop, &b[WINDOW], &b[TWR], &b[TWI], &b[RTR], &b[RTI], &b[BITREV],
                          &b[MEL_LO], &b[MEL_HI], &b[MEL_OFF], &b[MEL_W], &b[CHROMA],
                          &b[BAND_LO], &b[BAND_HI], &b[BAND_Q], &b[MEL_OUT], &b[CHROMA_OUT],
                          &b[PEAK_OUT], &b[VALLEY_OUT]))
        goto done; /* the buffers parsed before the failing one are released below */
    Args a = {
        .x = b[X].buf, .n_frames = n_frames, .hop = hop,
        .window = b[WINDOW].buf, .n_fft = b[WINDOW].len / 8,
        .twr = b[TWR].buf, .twi = b[TWI].buf, .rtr = b[RTR].buf, .rti = b[RTI].buf,
        .bitrev = b[BITREV].buf,
        .n_mels = b[MEL_LO].len / 4, .mel_lo = b[MEL_LO].buf, .mel_hi = b[MEL_HI].buf,
        .mel_off = b[MEL_OFF].buf, .mel_w = b[MEL_W].buf,
        .chroma = b[CHROMA].buf,
        .n_bands = b[BAND_LO].len / 4, .band_lo = b[BAND_LO].buf, .band_hi = b[BAND_HI].buf,
        .band_q = b[BAND_Q].buf,
        .mel_out = b[MEL_OUT].buf, .chroma_out = b[CHROMA_OUT].buf,
        .peak_out = b[PEAK_OUT].buf, .valley_out = b[VALLEY_OUT].buf,
    };
    a.n_chroma = b[CHROMA].len / 8 / (a.n_fft / 2 + 1);
    if (check(&a, b) < 0) goto done;
    void *work = NULL;
    if (posix_memalign(&work, 64, (size_t)(3 * (a.n_fft / 2) + 1) * sizeof(vd))) {
        PyErr_NoMemory();
        goto done;
    }
    a.work = work;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t f0 = 0; f0 < a.n_frames; f0 += LANES)
        frame_group(&a, f0, (int)(a.n_frames - f0 < LANES ? a.n_frames - f0 : LANES));
    Py_END_ALLOW_THREADS
    free(work);
    result = PyLong_FromSsize_t(a.n_frames);
done:
    for (int i = 0; i < N_BUFFERS; i++)
        if (b[i].obj) PyBuffer_Release(&b[i]);
    return result;
}

static PyMethodDef methods[] = {{"frames", frames, METH_VARARGS, frames_doc},
                                {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_features",
                                    "Private: the per-frame kernel of edgeav.features.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__features(void) { return PyModule_Create(&module); }
