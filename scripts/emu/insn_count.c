/*
 * A qemu TCG plugin (API version 1, as Debian's qemu 7.2 loads it) that counts the guest
 * instructions a process executes: in total, those that touch vector or floating-point
 * registers ("simd"), those that read or write memory ("mem", prefetches excluded), both at
 * once ("simd_mem"), and two instruction-set markers: aarch64 "dot" (SDOT/UDOT/USDOT/SUDOT)
 * and "fp16" (half-precision arithmetic and conversions); x86 "ymm" (names a 256-bit
 * register) and "zmm" (a 512-bit one).
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
extern const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
extern size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* EXT_A, EXT_B: which instruction-set paths ran. x86: instructions naming a 256-bit %ymm
 * register (AVX/AVX2) and a 512-bit %zmm one (AVX-512). aarch64: dot products (SDOT, UDOT,
 * USDOT, SUDOT) and half-precision floating point (FP16 arithmetic, FCVTL/FCVTN between
 * half and single).
 *
 * aarch64 is classified from the instruction word, not from qemu's disassembly: qemu 7.2's
 * aarch64 disassembler prints ARMv8.2 instructions (SDOT, FP16 arithmetic, ...) as ".byte",
 * which would hide exactly the Cortex-A76 paths. x86 uses the disassembly (capstone). */
enum { TOTAL, SIMD, MEM, SIMD_MEM, EXT_A, EXT_B, KINDS };
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


/* x86 (from capstone's disassembly): whether `s` names a vector/FP register: %xmm, %ymm,
 * %zmm, the %k mask registers, x87 %st, MMX %mm. */
static bool names_simd_register(const char *s) {
    return strstr(s, "%xmm") || strstr(s, "%ymm") || strstr(s, "%zmm") || strstr(s, "%st") ||
           strstr(s, "%mm") || (strstr(s, "%k") && !strstr(s, "%kernel"));
}

static void mnemonic_of(const char *s, char *out, size_t n) {
    size_t i = 0;
    while (s[i] && !isspace((unsigned char)s[i]) && i < n - 1) { out[i] = (char)tolower((unsigned char)s[i]); i++; }
    out[i] = 0;
}

static bool is_ext_a(const char *s) { return x86 && strstr(s, "%ymm") != NULL; }

static bool is_ext_b(const char *s) { return x86 && strstr(s, "%zmm") != NULL; }

/* aarch64 by encoding (Arm ARM, "Top-level encodings", op0 = bits 28:25). */
static bool a64_is_prefetch(uint32_t w) {
    return (w & 0xFFC00000u) == 0xF9800000u    /* PRFM (immediate) */
        || (w & 0xFF000000u) == 0xD8000000u    /* PRFM (literal) */
        || (w & 0xFFE00C00u) == 0xF8A00800u    /* PRFM (register) */
        || (w & 0xFFE00C00u) == 0xF8800000u;   /* PRFUM */
}
static bool a64_mem(uint32_t w) { return ((w >> 25) & 0x5) == 0x4 && !a64_is_prefetch(w); }
static bool a64_simd(uint32_t w) {
    uint32_t op0 = (w >> 25) & 0xF;
    if ((op0 & 0x7) == 0x7) return true;                 /* SIMD&FP data processing */
    return (op0 & 0x5) == 0x4 && ((w >> 26) & 1);        /* SIMD&FP loads and stores */
}
static bool a64_dot(uint32_t w) {
    if ((w & 0x9F20FC00u) == 0x0E009400u && ((w >> 22) & 3) == 2) return true; /* SDOT/UDOT (vector) */
    if ((w & 0x9FC0F400u) == 0x0F80E000u) return true;                         /* SDOT/UDOT (by element) */
    if ((w & 0xBFE0FC00u) == 0x0E809C00u) return true;                         /* USDOT (vector) */
    return (w & 0xBF40F400u) == 0x0F00F000u;                                   /* SUDOT/USDOT (by element) */
}
static bool a64_fp16(uint32_t w) {
    if ((w & 0x9F60C400u) == 0x0E400400u) return true;   /* Advanced SIMD three same (FP16) */
    if ((w & 0x9F7E0C00u) == 0x0E780800u) return true;   /* Advanced SIMD two-reg misc (FP16) */
    if ((w & 0xDF60C400u) == 0x5E400400u) return true;   /* Advanced SIMD scalar three same FP16 */
    if ((w & 0x9FC00400u) == 0x0F000000u) {              /* Advanced SIMD x indexed element, size 00 */
        uint32_t opc = (w >> 12) & 0xF;
        if (opc == 0x1 || opc == 0x5 || opc == 0x9) return true; /* FMLA, FMLS, FMUL(X) .h */
    }
    if ((w & 0xBFFFEC00u) == 0x0E216800u) return true;   /* FCVTN/FCVTL (half <-> single) */
    /* Scalar FP (M=0, S=0, 11110, ftype=11 half) data processing and conversions. */
    if ((w & 0x5F000000u) == 0x1E000000u && ((w >> 22) & 3) == 3) return true;
    /* FCVT Hd, Sn/Dn: ftype = source, opc (bits 16:15) = 11 destination half. */
    if ((w & 0xFF3E7C00u) == 0x1E224000u && ((w >> 15) & 3) == 3) return true;
    return false;
}

/* x86: whether the instruction reads or writes memory (a memory operand, or implicitly). */
static bool touches_memory(const char *s) {
    char mnemonic[32];
    mnemonic_of(s, mnemonic, sizeof mnemonic);
    if (!strncmp(mnemonic, "lea", 3) || !strncmp(mnemonic, "nop", 3) || !strncmp(mnemonic, "prefetch", 8)) return false;
    if (!strncmp(mnemonic, "push", 4) || !strncmp(mnemonic, "pop", 3) || !strncmp(mnemonic, "call", 4) ||
        !strncmp(mnemonic, "ret", 3) || !strncmp(mnemonic, "movs", 4) || !strncmp(mnemonic, "stos", 4))
        return true;
    return strchr(s, '(') != NULL;
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
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        bool simd, mem, ext_a, ext_b;
        if (!x86) {
            uint32_t w;
            if (qemu_plugin_insn_size(insn) != 4) continue;
            memcpy(&w, qemu_plugin_insn_data(insn), 4); /* little-endian guest and host */
            simd = a64_simd(w);
            mem = a64_mem(w);
            ext_a = a64_dot(w);
            ext_b = a64_fp16(w);
        } else {
            char *d = qemu_plugin_insn_disas(insn);
            if (!d) continue;
            simd = names_simd_register(d);
            mem = touches_memory(d);
            ext_a = is_ext_a(d);
            ext_b = is_ext_b(d);
            free(d);
        }
        b->n[SIMD] += simd;
        b->n[MEM] += mem;
        b->n[SIMD_MEM] += simd && mem;
        b->n[EXT_A] += ext_a;
        b->n[EXT_B] += ext_b;
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
    char line[640];
    snprintf(line, sizeof line,
             "{\"instructions\": %llu, \"simd\": %llu, \"mem\": %llu, \"simd_mem\": %llu, \"%s\": %llu, \"%s\": %llu, "
             "\"vcpus\": %u, \"first_block\": %llu}\n",
             (unsigned long long)sum[TOTAL], (unsigned long long)sum[SIMD], (unsigned long long)sum[MEM],
             (unsigned long long)sum[SIMD_MEM], x86 ? "ymm" : "dot", (unsigned long long)sum[EXT_A],
             x86 ? "zmm" : "fp16", (unsigned long long)sum[EXT_B], threads, (unsigned long long)first_vaddr);
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
