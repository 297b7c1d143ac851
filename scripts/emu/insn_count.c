/*
 * A qemu TCG plugin (API version 1, as Debian's qemu 7.2 loads it) that counts the guest
 * instructions a process executes: in total, those that touch vector or floating-point
 * registers ("simd"), those that read or write memory ("mem"), and both at once.
 * Counts are kept per vCPU (one per guest thread under qemu-user) and summed at exit,
 * so a multi-threaded guest is counted exactly, spinning helpers included.
 *
 *   qemu-aarch64 -cpu cortex-a72 -plugin ./insn_count.so,out=counts.json ./prog
 *   qemu-aarch64 ... -plugin ./insn_count.so,out=counts.json,profile=prof.txt ./prog
 *
 * `profile=` also writes, per translated block, its start address and the instructions it
 * executed (one line `hex_address count`), and the address of the first block executed
 * (the entry point of a static executable, from which scripts/emu_profile.py works out
 * where a position-independent binary was loaded).
 *
 * No header is packaged for qemu 7.2, so the few declarations used are written here;
 * they match qemu's include/qemu/qemu-plugin.h at QEMU_PLUGIN_VERSION 1.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <pthread.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                                 enum qemu_plugin_cb_flags flags, void *userdata);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

enum { TOTAL, SIMD, MEM, SIMD_MEM, KINDS };
/* vCPU indices are reused as threads come and go; more than this many at once share the
 * last slot through atomic adds. */
#define SLOTS 256

struct slot {
    uint64_t n[KINDS];
    char pad[64 - (KINDS * 8) % 64];
};
static struct slot slots[SLOTS];

/* One translated block: its instruction counts by kind, and (profile) how often it ran. */
struct block {
    uint32_t n[KINDS];
    uint64_t vaddr;
    _Atomic uint64_t runs;
    struct block *next;
};
static struct block *blocks; /* every block, for the profile */
static pthread_mutex_t blocks_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t first_vaddr;
static _Atomic int have_first;
static char *out_path, *profile_path;
static bool x86;

static bool is_reg_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* Whether `s` names a vector/FP register as a whole word: aarch64 v0-v31, q/d/s/h/b0-31,
 * z/p (SVE); x86 %xmm, %ymm, %zmm, %k mask registers, %st, %mm. */
static bool names_simd_register(const char *s) {
    if (x86) {
        return strstr(s, "%xmm") || strstr(s, "%ymm") || strstr(s, "%zmm") || strstr(s, "%st") ||
               strstr(s, "%mm") || (strstr(s, "%k") && !strstr(s, "%kernel"));
    }
    /* Skip the mnemonic: register names only in operands. */
    const char *p = s;
    while (*p && !isspace((unsigned char)*p)) p++;
    for (; *p; p++) {
        if (p > s && is_reg_char(p[-1])) continue;
        char c = *p;
        if (c == 'v' || c == 'q' || c == 'd' || c == 's' || c == 'h' || c == 'b' || c == 'z') {
            const char *q = p + 1;
            if (!isdigit((unsigned char)*q)) continue;
            while (isdigit((unsigned char)*q)) q++;
            /* v0.4s, q1, d2, s3, b4, h5, z6.s; not "sp", not hex literals like #0x... */
            if (!is_reg_char(*q) || *q == '.') {
                if (c == 'v' || c == 'z' || *q != '.') return true;
            }
        }
    }
    return false;
}

static bool touches_memory(const char *s) {
    char mnemonic[32] = {0};
    size_t i = 0;
    while (s[i] && !isspace((unsigned char)s[i]) && i < sizeof mnemonic - 1) { mnemonic[i] = (char)tolower((unsigned char)s[i]); i++; }
    if (x86) {
        if (!strncmp(mnemonic, "lea", 3) || !strncmp(mnemonic, "nop", 3) || !strncmp(mnemonic, "prefetch", 8)) return false;
        if (!strncmp(mnemonic, "push", 4) || !strncmp(mnemonic, "pop", 3) || !strncmp(mnemonic, "call", 4) ||
            !strncmp(mnemonic, "ret", 3) || !strncmp(mnemonic, "movs", 4) || !strncmp(mnemonic, "stos", 4))
            return true;
        return strchr(s, '(') != NULL;
    }
    /* aarch64: every load and store (ldr, ldp, ld1, ldxr, ldadd, stp, st4, ...), not prfm. */
    return (mnemonic[0] == 'l' && mnemonic[1] == 'd') || (mnemonic[0] == 's' && mnemonic[1] == 't') ||
           !strncmp(mnemonic, "cas", 3) || !strncmp(mnemonic, "swp", 3);
}

static void on_exec(unsigned int vcpu, void *udata) {
    struct block *b = udata;
    if (vcpu < SLOTS - 1) {
        uint64_t *n = slots[vcpu].n;
        for (int k = 0; k < KINDS; k++) n[k] += b->n[k];
    } else {
        for (int k = 0; k < KINDS; k++) __atomic_fetch_add(&slots[SLOTS - 1].n[k], b->n[k], __ATOMIC_RELAXED);
    }
    if (profile_path) atomic_fetch_add_explicit(&b->runs, 1, memory_order_relaxed);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    struct block *b = calloc(1, sizeof *b);
    if (!b) abort();
    size_t n = qemu_plugin_tb_n_insns(tb);
    b->vaddr = qemu_plugin_tb_vaddr(tb);
    b->n[TOTAL] = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        char *d = qemu_plugin_insn_disas(qemu_plugin_tb_get_insn(tb, i));
        if (!d) continue;
        bool simd = names_simd_register(d), mem = touches_memory(d);
        b->n[SIMD] += simd;
        b->n[MEM] += mem;
        b->n[SIMD_MEM] += simd && mem;
        free(d);
    }
    if (!atomic_exchange(&have_first, 1)) first_vaddr = b->vaddr;
    if (profile_path) {
        pthread_mutex_lock(&blocks_lock);
        b->next = blocks;
        blocks = b;
        pthread_mutex_unlock(&blocks_lock);
    }
    /* Blocks are never freed: qemu may run a block's code until the process ends. */
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, QEMU_PLUGIN_CB_NO_REGS, b);
}

static void on_process_exit(qemu_plugin_id_t id, void *udata) {
    (void)id; (void)udata;
    uint64_t sum[KINDS] = {0};
    unsigned threads = 0;
    for (int s = 0; s < SLOTS; s++) {
        if (slots[s].n[TOTAL]) threads++;
        for (int k = 0; k < KINDS; k++) sum[k] += slots[s].n[k];
    }
    char line[512];
    snprintf(line, sizeof line,
             "{\"instructions\": %llu, \"simd\": %llu, \"mem\": %llu, \"simd_mem\": %llu, \"vcpus\": %u, \"first_block\": %llu}\n",
             (unsigned long long)sum[TOTAL], (unsigned long long)sum[SIMD], (unsigned long long)sum[MEM],
             (unsigned long long)sum[SIMD_MEM], threads, (unsigned long long)first_vaddr);
    if (out_path) {
        FILE *f = fopen(out_path, "w");
        if (f) { fputs(line, f); fclose(f); }
    } else {
        qemu_plugin_outs(line);
    }
    if (profile_path) {
        FILE *f = fopen(profile_path, "w");
        if (f) {
            fprintf(f, "first %llx\n", (unsigned long long)first_vaddr);
            for (struct block *b = blocks; b; b = b->next) {
                uint64_t runs = atomic_load(&b->runs);
                if (runs) fprintf(f, "%llx %llu %llu %llu\n", (unsigned long long)b->vaddr, (unsigned long long)(runs * b->n[TOTAL]),
                                  (unsigned long long)(runs * b->n[SIMD]), (unsigned long long)(runs * b->n[MEM]));
            }
            fclose(f);
        }
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    /* qemu_info_t starts with `const char *target_name`. */
    const char *target = *(const char *const *)info;
    x86 = target && (strstr(target, "x86") || strstr(target, "i386"));
    for (int i = 0; i < argc; i++) {
        if (!strncmp(argv[i], "out=", 4)) out_path = strdup(argv[i] + 4);
        else if (!strncmp(argv[i], "profile=", 8)) profile_path = strdup(argv[i] + 8);
        else {
            fprintf(stderr, "insn_count: unknown argument %s (out=FILE, profile=FILE)\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_process_exit, NULL);
    return 0;
}
