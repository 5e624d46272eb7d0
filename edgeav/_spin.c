/* edgeav._spin: wait for a number in shared memory to change, without the GIL, by spinning.
 *
 * The runtime's two threads hand each tick's work over through a queue, and a thread blocked on
 * a queue (or a lock) sleeps: its CPU goes idle, and waking it again takes tens of microseconds
 * in a virtual machine (measured here: about 60 us, and 40 us more for the thread that wakes
 * it), a fifth of a whole tick of the demo model. edgeav.runtime.worker.Worker therefore spins,
 * for a bounded time, where it knows the other thread is about to hand something over; this
 * module is that spin. Without it (no compiler at install) the Worker only blocks.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RELAX() _mm_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define RELAX() __asm__ __volatile__("yield" ::: "memory")
#else
#define RELAX() __asm__ __volatile__("" ::: "memory")
#endif

static double monotonic(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

PyDoc_STRVAR(wait_changed_doc,
             "wait_changed(flags, index, old, timeout) -> bool\n\n"
             "Spin, without the GIL, until flags[index] != old or timeout seconds have passed; "
             "True if it changed. flags: a writable, C-contiguous buffer of int64.");

static PyObject *wait_changed(PyObject *self, PyObject *args) {
    Py_buffer flags;
    Py_ssize_t index;
    long long old;
    double timeout;
    if (!PyArg_ParseTuple(args, "w*nLd", &flags, &index, &old, &timeout)) return NULL;
    if (flags.len % (Py_ssize_t)sizeof(int64_t) || index < 0 ||
        index >= flags.len / (Py_ssize_t)sizeof(int64_t) || !(timeout >= 0.0 && timeout <= 60.0)) {
        PyBuffer_Release(&flags);
        PyErr_SetString(PyExc_ValueError,
                        "wait_changed: index must be inside an int64 buffer and timeout in [0, 60] s");
        return NULL;
    }
    const int64_t *at = (const int64_t *)flags.buf + index;
    int changed = 0;
    Py_BEGIN_ALLOW_THREADS
    const double end = monotonic() + timeout;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (__atomic_load_n(at, __ATOMIC_ACQUIRE) != (int64_t)old) {
                changed = 1;
                break;
            }
            RELAX();
        }
        if (changed || monotonic() >= end) break;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&flags);
    return PyBool_FromLong(changed);
}

static PyMethodDef methods[] = {{"wait_changed", wait_changed, METH_VARARGS, wait_changed_doc},
                                {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_spin",
                                    "Private: a GIL-free spin-wait for edgeav.runtime.worker.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__spin(void) { return PyModule_Create(&module); }
