/* An LD_PRELOAD library for tests: counts, per thread, the calls that allocate, free or lock.
 *
 * The daemon runs with it preloaded (tests/test_callback_jack.py); each call of malloc, calloc,
 * realloc, the aligned allocators, free, mmap, munmap and pthread_mutex_lock made through the
 * dynamic linker (our C mixer, libjack, onnxruntime, Python) is counted under the calling
 * thread's kernel id, then passed on to glibc. The counts live in a file mapped shared
 * ($DKVAE_ALLOC_COUNTS), so the test reads them while the daemon runs, and after a kill.
 * glibc's own internal calls do not pass through here; they are glibc's business.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define THREADS 512

enum { ALLOCS, FREES, MAPS, UNMAPS, LOCKS, KINDS };

typedef struct {
    atomic_int tid; /* 0: a free row */
    atomic_ullong count[KINDS];
} row;

static row *table; /* NULL until the constructor ran, or without $DKVAE_ALLOC_COUNTS */
static __thread row *mine;

void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);
void __libc_free(void *);

__attribute__((constructor)) static void open_table(void) {
    const char *path = getenv("DKVAE_ALLOC_COUNTS");
    if (path == NULL) return;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    size_t size = sizeof(row) * THREADS;
    if (ftruncate(fd, (off_t)size) != 0) {
        close(fd);
        return;
    }
    void *memory = (void *)syscall(SYS_mmap, NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (memory != MAP_FAILED) table = memory;
}

static void count(int kind) {
    if (table == NULL) return;
    if (mine == NULL) {
        int tid = (int)syscall(SYS_gettid);
        for (int i = 0; i < THREADS && mine == NULL; i++) {
            int expected = 0;
            if (atomic_load(&table[i].tid) == tid ||
                atomic_compare_exchange_strong(&table[i].tid, &expected, tid))
                mine = &table[i];
        }
        if (mine == NULL) return; /* more threads than rows: not counted */
    }
    atomic_fetch_add(&mine->count[kind], 1);
}

void *malloc(size_t size) {
    count(ALLOCS);
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
    count(ALLOCS);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size) {
    count(ALLOCS);
    return __libc_realloc(p, size);
}

void *memalign(size_t alignment, size_t size) {
    count(ALLOCS);
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    count(ALLOCS);
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    count(ALLOCS);
    void *p = __libc_memalign(alignment, size);
    if (p == NULL) return 12; /* ENOMEM */
    *out = p;
    return 0;
}

void free(void *p) {
    count(FREES);
    __libc_free(p);
}

void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset) {
    count(MAPS);
    return (void *)syscall(SYS_mmap, addr, length, prot, flags, fd, offset);
}

int munmap(void *addr, size_t length) {
    count(UNMAPS);
    return (int)syscall(SYS_munmap, addr, length);
}

int pthread_mutex_lock(pthread_mutex_t *mutex) {
    static int (*next)(pthread_mutex_t *);
    if (next == NULL) next = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT, "pthread_mutex_lock");
    count(LOCKS);
    return next(mutex);
}
