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
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 8 /* transpose8() below is written for eight */
#define QMAX 64 /* widest quantile (values per side) a contrast band may average here */

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

/* unaligned vector loads of LANES doubles */
typedef double vdu __attribute__((vector_size(LANES * sizeof(double)), aligned(sizeof(double))));

#if defined(__clang__)
#define SHUFFLE(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUFFLE(a, b, ...) __builtin_shuffle(a, b, (vl){__VA_ARGS__})
#endif

/* r[j][l] <- r[l][j]: an 8 x 8 transpose in three rounds of two-input shuffles. */
static inline void transpose8(vd r[LANES]) {
    vd t[LANES];
    for (int k = 0; k < 8; k += 2) {
        t[k] = SHUFFLE(r[k], r[k + 1], 0, 8, 2, 10, 4, 12, 6, 14);
        t[k + 1] = SHUFFLE(r[k], r[k + 1], 1, 9, 3, 11, 5, 13, 7, 15);
    }
    for (int k = 0; k < 8; k += 4)
        for (int m = 0; m < 2; m++) {
            r[k + m] = SHUFFLE(t[k + m], t[k + m + 2], 0, 1, 8, 9, 4, 5, 12, 13);
            r[k + m + 2] = SHUFFLE(t[k + m], t[k + m + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        }
    for (int m = 0; m < 4; m++) {
        t[m] = SHUFFLE(r[m], r[m + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        t[m + 4] = SHUFFLE(r[m], r[m + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
    for (int m = 0; m < 8; m++) r[m] = t[m];
}

static inline vd vmin(vd a, vd b) {
    const vl m = a < b;
    return (vd)((m & (vl)a) | (~m & (vl)b));
}
static inline vd vmax(vd a, vd b) {
    const vl m = a > b;
    return (vd)((m & (vl)a) | (~m & (vl)b));
}

typedef struct {
    const double *x; /* n_x samples; frame f starts at f * hop - pad (zeros outside x) */
    Py_ssize_t n_x, n_frames, hop, pad, n_fft;
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
    vd *work;        /* 3 M + 1 vectors */
    double *edge;    /* LANES x n_fft: frames that reach past either end of x, zero-padded */
    vd mel_max, peak_max, valley_max; /* running maxima (lanes past the end repeat a frame) */
} Args;

CLONES static void frame_group(Args *a, Py_ssize_t f0, int lanes) {
    const Py_ssize_t M = a->n_fft / 2, n_bins = M + 1;
    vd *zr = a->work, *zi = zr + M, *P = zi + M;

    /* Load: window, pack even/odd samples as real/imaginary parts, bit-reverse. Eight
     * samples of eight frames at a time, transposed so that a vector holds one sample of
     * every frame. Lanes past the last frame repeat frame f0 (computed, never stored). */
    const double *src[LANES];
    for (int l = 0; l < LANES; l++) {
        const Py_ssize_t start = (f0 + (l < lanes ? l : 0)) * a->hop - a->pad;
        if (start >= 0 && start + a->n_fft <= a->n_x) {
            src[l] = a->x + start;
            continue;
        }
        double *e = a->edge + l * a->n_fft;
        for (Py_ssize_t n = 0; n < a->n_fft; n++)
            e[n] = start + n >= 0 && start + n < a->n_x ? a->x[start + n] : 0.0;
        src[l] = e;
    }
    for (Py_ssize_t n = 0; n < a->n_fft; n += LANES) {
        vd r[LANES];
        for (int l = 0; l < LANES; l++) r[l] = *(const vdu *)(src[l] + n);
        transpose8(r);
        for (int j = 0; j < LANES; j += 2) {
            const int32_t at = a->bitrev[(n + j) / 2];
            zr[at] = r[j] * a->window[n + j];
            zi[at] = r[j + 1] * a->window[n + j + 1];
        }
    }

    /* M-point complex FFT, decimation in time: pairs of radix-2 stages fused into one pass
     * (radix 2^2: half the loads and stores, and the second stage's odd twiddle is -i times
     * its even one), then a last radix-2 stage when log2(M) is odd. */
    Py_ssize_t len = 1; /* the transforms done so far have this length */
    for (; 4 * len <= M; len *= 4) {
        const Py_ssize_t h = len, step1 = M / (2 * h), step2 = M / (4 * h);
        for (Py_ssize_t i = 0; i < M; i += 4 * h) {
            for (Py_ssize_t j = 0; j < h; j++) {
                const double w1r = a->twr[j * step1], w1i = a->twi[j * step1];
                const double w2r = a->twr[j * step2], w2i = a->twi[j * step2];
                vd *r0 = zr + i + j, *i0 = zi + i + j;
                const vd ar = r0[0], ai = i0[0], br = r0[h], bi = i0[h];
                const vd cr = r0[2 * h], ci = i0[2 * h], dr = r0[3 * h], di = i0[3 * h];
                /* first stage: (a, b) and (c, d) with w1 */
                const vd tbr = br * w1r - bi * w1i, tbi = br * w1i + bi * w1r;
                const vd tdr = dr * w1r - di * w1i, tdi = dr * w1i + di * w1r;
                const vd a1r = ar + tbr, a1i = ai + tbi, b1r = ar - tbr, b1i = ai - tbi;
                const vd c1r = cr + tdr, c1i = ci + tdi, d1r = cr - tdr, d1i = ci - tdi;
                /* second stage: (a1, c1) with w2, (b1, d1) with -i w2 */
                const vd tcr = c1r * w2r - c1i * w2i, tci = c1r * w2i + c1i * w2r;
                const vd ter = d1r * w2r - d1i * w2i, tei = d1r * w2i + d1i * w2r;
                /* -i (ter + i tei) = tei - i ter */
                r0[0] = a1r + tcr;
                i0[0] = a1i + tci;
                r0[2 * h] = a1r - tcr;
                i0[2 * h] = a1i - tci;
                r0[h] = b1r + tei;
                i0[h] = b1i - ter;
                r0[3 * h] = b1r - tei;
                i0[3 * h] = b1i + ter;
            }
        }
    }
    if (len < M) { /* one radix-2 stage left: len = M / 2 */
        for (Py_ssize_t j = 0; j < len; j++) {
            const double wr = a->twr[j], wi = a->twi[j];
            const vd br = zr[j + len], bi = zi[j + len];
            const vd tr = br * wr - bi * wi, ti = br * wi + bi * wr;
            const vd ar = zr[j], ai = zi[j];
            zr[j + len] = ar - tr;
            zi[j + len] = ai - ti;
            zr[j] = ar + tr;
            zi[j] = ai + ti;
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
        a->mel_max = vmax(a->mel_max, acc);
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
    /* each frame's chroma divided by its maximum, unless that is below DBL_MIN (~0) */
    for (int l = 0; l < lanes; l++) {
        double *o = a->chroma_out + (f0 + l) * a->n_chroma, top = o[0];
        for (Py_ssize_t j = 1; j < a->n_chroma; j++) top = o[j] > top ? o[j] : top;
        if (top < DBL_MIN) top = 1.0;
        for (Py_ssize_t j = 0; j < a->n_chroma; j++) o[j] /= top;
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
        a->valley_max = vmax(a->valley_max, valley);
        a->peak_max = vmax(a->peak_max, peak);
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
    if (a->pad < 0 || a->pad > N) return fail("pad must be in [0, n_fft]");
    if (a->n_x + 2 * a->pad < N || (a->n_frames - 1) > (a->n_x + 2 * a->pad - N) / a->hop)
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
             "frames(x, n_frames, hop, pad, window, twr, twi, rtr, rti, bitrev, mel_lo, mel_hi, "
             "mel_off, mel_w, chroma, band_lo, band_hi, band_q, mel_out, chroma_out, peak_out, "
             "valley_out) -> (max mel, max peak, max valley)\n\n"
             "Private to edgeav.features: C-contiguous float64 (int32 for the index tables) "
             "buffers; see edgeav/_features.c.");

static PyObject *frames(PyObject *self, PyObject *args) {
    Py_buffer b[N_BUFFERS];
    Py_ssize_t n_frames, hop, pad;
    PyObject *result = NULL;
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "y*nnn" "y*y*y*y*y*y*y*" "y*y*y*y*y*y*y*" "w*w*w*w*", &b[X], &n_frames,
                          &hop, &pad, &b[WINDOW], &b[TWR], &b[TWI], &b[RTR], &b[RTI], &b[BITREV],
                          &b[MEL_LO], &b[MEL_HI], &b[MEL_OFF], &b[MEL_W], &b[CHROMA],
                          &b[BAND_LO], &b[BAND_HI], &b[BAND_Q], &b[MEL_OUT], &b[CHROMA_OUT],
                          &b[PEAK_OUT], &b[VALLEY_OUT]))
        goto done; /* the buffers parsed before the failing one are released below */
    Args a = {
        .x = b[X].buf, .n_x = b[X].len / 8, .n_frames = n_frames, .hop = hop, .pad = pad,
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
    const size_t work_size = (size_t)(3 * (a.n_fft / 2) + 1) * sizeof(vd);
    if (posix_memalign(&work, 64, work_size + (size_t)LANES * a.n_fft * sizeof(double))) {
        PyErr_NoMemory();
        goto done;
    }
    a.work = work;
    a.edge = (double *)((char *)work + work_size);
    a.mel_max = a.peak_max = a.valley_max = (vd){0} - INFINITY;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t f0 = 0; f0 < a.n_frames; f0 += LANES)
        frame_group(&a, f0, (int)(a.n_frames - f0 < LANES ? a.n_frames - f0 : LANES));
    Py_END_ALLOW_THREADS
    free(work);
    double mel_max = -INFINITY, peak_max = -INFINITY, valley_max = -INFINITY;
    for (int l = 0; l < LANES; l++) {
        mel_max = a.mel_max[l] > mel_max ? a.mel_max[l] : mel_max;
        peak_max = a.peak_max[l] > peak_max ? a.peak_max[l] : peak_max;
        valley_max = a.valley_max[l] > valley_max ? a.valley_max[l] : valley_max;
    }
    result = Py_BuildValue("(ddd)", mel_max, peak_max, valley_max);
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
