/*
 * Reference single-producer single-consumer ring in C11, the baseline basis's shared-memory ring
 * is measured against. Same geometry as basis_core.rings: 64-byte records, power-of-two slots,
 * HEAD and TAIL cursors on separate 128-byte lines, each end caching the other's cursor, slot
 * writes published by a release store of HEAD and freed by a release store of TAIL, the other
 * end's cursor read with an acquire load. Records carry the same numbered, checksummed payload
 * shape as basis_core.rings.seqcheck (seq in word 0, a check word at the end), and the consumer
 * checks every record (seq contiguous, check untorn) before a figure counts.
 *
 * Two processes share an anonymous MAP_SHARED mapping (fork); the consumer / pinger runs on
 * cpu_a, the producer / ponger on cpu_b (-1 = unpinned).
 *
 *   ring throughput N BATCH CAP CPU_A CPU_B   -> "ns <elapsed ns for N records>"
 *   ring pingpong   N CAP CPU_A CPU_B         -> "lat <one-way ns> ..." (N values, half round trips)
 *
 * Exit status 0 only when every record arrived intact; otherwise a message on stderr.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WORDS 8

typedef struct {
    _Alignas(128) _Atomic int64_t head;
    _Alignas(128) _Atomic int64_t tail;
    _Alignas(128) _Atomic int64_t ready;
    _Alignas(128) uint64_t slots[][WORDS];
} ring_t;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* spin with PAUSE, then yield the core on every poll (as basis_core.rings.seqcheck does) */
#define SPIN_BEFORE_YIELD 1000
static inline void idle(int *spins) {
    if (++*spins > SPIN_BEFORE_YIELD) sched_yield(); else cpu_relax();
}

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline uint64_t mix(uint64_t x) {
    uint64_t z = x * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline void fill(uint64_t *w, uint64_t seq) {
    uint64_t acc = seq;
    w[0] = seq;
    for (int k = 1; k < 7; k++) { w[k] = mix(seq + k); acc ^= w[k]; }
    uint64_t low = mix(seq) & 0xFFFFFFFFULL;
    acc ^= low;
    w[7] = (((acc ^ (acc >> 32)) & 0xFFFFFFFFULL) << 32) | low;
}

static inline int check(const uint64_t *w, uint64_t seq) {
    if (w[0] != seq) return 1;
    uint64_t acc = w[0];
    for (int k = 1; k < 7; k++) acc ^= w[k];
    acc ^= w[7] & 0xFFFFFFFFULL;
    return ((w[7] >> 32) != ((acc ^ (acc >> 32)) & 0xFFFFFFFFULL)) ? 2 : 0;
}

static void pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof(set), &set);
}

static ring_t *make_ring(int64_t cap) {
    size_t bytes = sizeof(ring_t) + (size_t)cap * WORDS * 8;
    ring_t *r = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) { perror("mmap"); exit(2); }
    memset(r, 0, bytes);
    return r;
}

/* producer: n records, publish every `batch` */
static void produce(ring_t *r, int64_t cap, int64_t n, int64_t batch) {
    int64_t mask = cap - 1, head = 0, tail_c = 0;
    while (head < n) {
        int64_t want = n - head < batch ? n - head : batch;
        int spins = 0;
        while (cap - (head - tail_c) < want) {
            tail_c = atomic_load_explicit(&r->tail, memory_order_acquire);
            if (cap - (head - tail_c) < want) idle(&spins);
        }
        for (int64_t i = 0; i < want; i++) fill(r->slots[(head + i) & mask], (uint64_t)(head + i));
        head += want;
        atomic_store_explicit(&r->head, head, memory_order_release);
    }
}

/* consumer: n records, claim up to `batch` at a time, verify each */
static int consume(ring_t *r, int64_t cap, int64_t n, int64_t batch) {
    int64_t mask = cap - 1, tail = 0, head_c = 0;
    while (tail < n) {
        int spins = 0;
        while (head_c == tail) {
            head_c = atomic_load_explicit(&r->head, memory_order_acquire);
            if (head_c == tail) idle(&spins);
        }
        int64_t k = head_c - tail < batch ? head_c - tail : batch;
        for (int64_t i = 0; i < k; i++) {
            int bad = check(r->slots[(tail + i) & mask], (uint64_t)(tail + i));
            if (bad) { fprintf(stderr, "record %lld: %s\n", (long long)(tail + i), bad == 1 ? "wrong seq" : "torn"); return 1; }
        }
        tail += k;
        atomic_store_explicit(&r->tail, tail, memory_order_release);
    }
    return 0;
}

static int throughput(int64_t n, int64_t batch, int64_t cap, int cpu_a, int cpu_b) {
    ring_t *r = make_ring(cap);
    pid_t pid = fork();
    if (pid == 0) {
        pin(cpu_b);
        atomic_store_explicit(&r->ready, 1, memory_order_release);
        while (atomic_load_explicit(&r->ready, memory_order_acquire) != 2) cpu_relax();
        produce(r, cap, n, batch);
        _exit(0);
    }
    pin(cpu_a);
    while (atomic_load_explicit(&r->ready, memory_order_acquire) != 1) cpu_relax();
    int64_t t0 = now_ns();
    atomic_store_explicit(&r->ready, 2, memory_order_release);
    int bad = consume(r, cap, n, batch);
    int64_t t1 = now_ns();
    int status = 0;
    waitpid(pid, &status, 0);
    if (bad || !WIFEXITED(status) || WEXITSTATUS(status)) return 1;
    printf("ns %lld\n", (long long)(t1 - t0));
    return 0;
}

static int pingpong(int64_t n, int64_t cap, int cpu_a, int cpu_b) {
    ring_t *a = make_ring(cap), *b = make_ring(cap);
    int64_t mask = cap - 1;
    pid_t pid = fork();
    if (pid == 0) {                               /* ponger: echo a -> b */
        pin(cpu_b);
        atomic_store_explicit(&a->ready, 1, memory_order_release);
        int64_t at = 0, ah = 0, bh = 0, bt = 0;
        while (at < n) {
            int spins = 0;
            while (ah == at) { ah = atomic_load_explicit(&a->head, memory_order_acquire); if (ah == at) idle(&spins); }
            while (bh - bt >= cap) { bt = atomic_load_explicit(&b->tail, memory_order_acquire); cpu_relax(); }
            memcpy(b->slots[bh & mask], a->slots[at & mask], WORDS * 8);
            atomic_store_explicit(&b->head, ++bh, memory_order_release);
            atomic_store_explicit(&a->tail, ++at, memory_order_release);
        }
        _exit(0);
    }
    pin(cpu_a);
    while (atomic_load_explicit(&a->ready, memory_order_acquire) != 1) cpu_relax();
    int64_t *lat = malloc(sizeof(int64_t) * (size_t)n);
    int64_t ah = 0, at = 0, bt = 0, bh = 0;
    uint64_t buf[WORDS];
    for (int64_t i = 0; i < n; i++) {
        fill(buf, (uint64_t)i);
        int64_t t0 = now_ns();
        while (ah - at >= cap) { at = atomic_load_explicit(&a->tail, memory_order_acquire); cpu_relax(); }
        memcpy(a->slots[ah & mask], buf, WORDS * 8);
        atomic_store_explicit(&a->head, ++ah, memory_order_release);
        int spins = 0;
        while (bh == bt) { bh = atomic_load_explicit(&b->head, memory_order_acquire); if (bh == bt) idle(&spins); }
        int64_t t1 = now_ns();
        int bad = check(b->slots[bt & mask], (uint64_t)i);
        atomic_store_explicit(&b->tail, ++bt, memory_order_release);
        if (bad) { fprintf(stderr, "echo %lld came back %s\n", (long long)i, bad == 1 ? "with the wrong seq" : "torn"); return 1; }
        lat[i] = (t1 - t0) / 2;
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) return 1;
    printf("lat");
    for (int64_t i = 0; i < n; i++) printf(" %lld", (long long)lat[i]);
    printf("\n");
    free(lat);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 7 && strcmp(argv[1], "throughput") == 0)
        return throughput(atoll(argv[2]), atoll(argv[3]), atoll(argv[4]), atoi(argv[5]), atoi(argv[6]));
    if (argc == 6 && strcmp(argv[1], "pingpong") == 0)
        return pingpong(atoll(argv[2]), atoll(argv[3]), atoi(argv[4]), atoi(argv[5]));
    fprintf(stderr, "usage: ring throughput N BATCH CAP CPU_A CPU_B | ring pingpong N CAP CPU_A CPU_B\n");
    return 2;
}
