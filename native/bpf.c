/*
 * pathlens native shim: BPF.
 *
 *  - Objects are opened and loaded by libbpf, found at run time with dlopen("libbpf.so.1"): the
 *    addon builds with no libbpf headers, and a host without libbpf still runs everything else.
 *    bpfAvailable() says what the dynamic loader reported when it is missing.
 *  - Everything else is the bpf(2) syscall itself: links (tcx and XDP; they detach when their last
 *    fd closes, so nothing stays attached after the process ends, however it ends), map
 *    operations, run-time statistics, and the ring-buffer consumer below.
 *  - The classic clsact path (kernels without tcx) goes through libbpf's bpf_tc_* netlink calls.
 *  - libbpf's messages (warnings, the verifier log of a refused program) are collected and handed
 *    to TypeScript by bpfLog(), which decides what to show.
 *
 * Ring buffers are consumed here without libbpf: the consumer page is mapped read-write and the
 * producer page plus the data area (mapped twice by the kernel, so records never wrap) read-only;
 * records are copied into a caller-owned buffer as [u32 length][u32 0][data, padded to 8], and the
 * consumer position advances past exactly what was copied. Readiness: poll the map fd (Poller).
 */
#include "shim.h"

#include <dlfcn.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- libbpf, resolved at run time ------------------------------------------------------- */

struct bpf_object;
struct bpf_program;
struct bpf_map;

/* ABI-stable option structs of libbpf 1.x (their first field is their size). */
struct pl_open_opts {
  size_t sz;
  const char *object_name;
};
struct pl_tc_hook {
  size_t sz;
  int ifindex;
  int attach_point; /* BPF_TC_INGRESS = 1, BPF_TC_EGRESS = 2, both = 3 */
  uint32_t parent;
  size_t : 0;
};
struct pl_tc_opts {
  size_t sz;
  int prog_fd;
  uint32_t flags;
  uint32_t prog_id;
  uint32_t handle;
  uint32_t priority;
  size_t : 0;
};

typedef int (*pl_print_fn)(int level, const char *fmt, va_list ap);

static struct {
  void *lib;
  char error[256];
  struct bpf_object *(*open_mem)(const void *, size_t, const struct pl_open_opts *);
  int (*load)(struct bpf_object *);
  void (*close)(struct bpf_object *);
  struct bpf_program *(*find_prog)(const struct bpf_object *, const char *);
  int (*prog_fd)(const struct bpf_program *);
  struct bpf_map *(*find_map)(const struct bpf_object *, const char *);
  int (*map_fd)(const struct bpf_map *);
  int (*set_max_entries)(struct bpf_map *, uint32_t);
  pl_print_fn (*set_print)(pl_print_fn);
  int (*tc_hook_create)(struct pl_tc_hook *);
  int (*tc_hook_destroy)(struct pl_tc_hook *);
  int (*tc_attach)(const struct pl_tc_hook *, struct pl_tc_opts *);
  int (*tc_detach)(const struct pl_tc_hook *, const struct pl_tc_opts *);
  int (*set_autoload)(struct bpf_program *, bool);
  int (*set_type)(struct bpf_program *, int);
  int (*set_expected_attach_type)(struct bpf_program *, int);
  int (*set_attach_target)(struct bpf_program *, int, const char *);
  int (*set_initial_value)(struct bpf_map *, const void *, size_t);
} lb;

#define LOG_MAX (64 * 1024)
static char log_buf[LOG_MAX];
static size_t log_len;

/* Keeps the end of what libbpf says (a verifier log ends with its reason): when the buffer is
 * full, the older half goes. */
static int collect_log(int level, const char *fmt, va_list ap) {
  if (level == 2 /* LIBBPF_DEBUG */) return 0;
  char line[1024];
  int n = vsnprintf(line, sizeof line, fmt, ap);
  if (n <= 0) return 0;
  size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
  if (log_len + len >= LOG_MAX) {
    size_t keep = log_len / 2;
    memmove(log_buf, log_buf + log_len - keep, keep);
    log_len = keep;
  }
  memcpy(log_buf + log_len, line, len);
  log_len += len;
  return 0;
}

static bool libbpf_ready(void) {
  if (lb.lib) return true;
  if (lb.error[0]) return false;
  void *h = dlopen("libbpf.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    snprintf(lb.error, sizeof lb.error, "%s", dlerror());
    return false;
  }
#define SYM(field, name)                                                                   \
  do {                                                                                     \
    *(void **)&lb.field = dlsym(h, name);                                                  \
    if (!lb.field) {                                                                       \
      snprintf(lb.error, sizeof lb.error, "libbpf.so.1 has no %s (libbpf 1.0 or newer is needed)", name); \
      dlclose(h);                                                                          \
      return false;                                                                        \
    }                                                                                      \
  } while (0)
  SYM(open_mem, "bpf_object__open_mem");
  SYM(load, "bpf_object__load");
  SYM(close, "bpf_object__close");
  SYM(find_prog, "bpf_object__find_program_by_name");
  SYM(prog_fd, "bpf_program__fd");
  SYM(find_map, "bpf_object__find_map_by_name");
  SYM(map_fd, "bpf_map__fd");
  SYM(set_max_entries, "bpf_map__set_max_entries");
  SYM(set_print, "libbpf_set_print");
  SYM(tc_hook_create, "bpf_tc_hook_create");
  SYM(tc_hook_destroy, "bpf_tc_hook_destroy");
  SYM(tc_attach, "bpf_tc_attach");
  SYM(tc_detach, "bpf_tc_detach");
  SYM(set_autoload, "bpf_program__set_autoload");
  SYM(set_type, "bpf_program__set_type");
  SYM(set_expected_attach_type, "bpf_program__set_expected_attach_type");
  SYM(set_initial_value, "bpf_map__set_initial_value");
  SYM(set_attach_target, "bpf_program__set_attach_target");
#undef SYM
  lb.set_print(collect_log);
  lb.lib = h;
  return true;
}

#define MAX_OBJECTS 16
static struct bpf_object *objects[MAX_OBJECTS];

static bool get_string(napi_env env, napi_value v, const char *name, char *out, size_t cap) {
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, out, cap, &n) != napi_ok) {
    char msg[96];
    snprintf(msg, sizeof msg, "argument '%s' must be a string", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  return true;
}

static bool get_object(napi_env env, napi_value v, struct bpf_object **out, int32_t *idx) {
  int32_t h;
  if (!pl_get_i32(env, v, "handle", &h)) return false;
  if (h < 0 || h >= MAX_OBJECTS || !objects[h]) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "not an open BPF object handle");
    return false;
  }
  *out = objects[h];
  if (idx) *idx = h;
  return true;
}

/* bpfAvailable() -> null | why libbpf cannot be used */
static napi_value js_available(napi_env env, napi_callback_info info) {
  napi_value out;
  if (libbpf_ready()) {
    napi_get_null(env, &out);
  } else {
    napi_create_string_utf8(env, lb.error, NAPI_AUTO_LENGTH, &out);
  }
  return out;
}

/* bpfLog() -> libbpf's messages since the last call */
static napi_value js_log(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_create_string_utf8(env, log_buf, log_len, &out);
  log_len = 0;
  return out;
}

/* bpfOpen(elf: Uint8Array, name: string) -> handle | -errno (libbpf copies the bytes) */
static napi_value js_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  pl_bytes elf;
  char name[64];
  if (!pl_args(env, info, 2, argv, NULL) || !pl_get_bytes(env, argv[0], "elf", &elf) ||
      !get_string(env, argv[1], "name", name, sizeof name))
    return NULL;
  if (!libbpf_ready()) return pl_errno(env, ELIBACC);
  int slot = -1;
  for (int i = 0; i < MAX_OBJECTS; i++)
    if (!objects[i]) { slot = i; break; }
  if (slot < 0) return pl_errno(env, EMFILE);
  struct pl_open_opts opts = {.sz = sizeof opts, .object_name = name};
  errno = 0;
  struct bpf_object *obj = lb.open_mem(elf.data, elf.len, &opts);
  if (!obj) return pl_errno(env, errno ? errno : EINVAL);
  objects[slot] = obj;
  return pl_int(env, slot);
}

/* argv[0] an object handle, argv[1] a program or map name: *out is that program or map, or NULL
 * when the object has none of the name. False when an argument was wrong (a JS error is thrown). */
static bool find_named(napi_env env, napi_value *argv, bool prog, void **out) {
  struct bpf_object *obj;
  char name[64];
  if (!get_object(env, argv[0], &obj, NULL) || !get_string(env, argv[1], prog ? "prog" : "map", name, sizeof name)) return false;
  *out = prog ? (void *)lb.find_prog(obj, name) : (void *)lb.find_map(obj, name);
  return true;
}

static napi_value rc_result(napi_env env, int rc) { return pl_int(env, rc < 0 ? rc : 0); }

/* argv[0..n) as int32 values, each named for the error a wrong one throws. */
static bool get_i32s(napi_env env, napi_value *argv, size_t n, const char *const *names, int32_t *out) {
  for (size_t i = 0; i < n; i++)
    if (!pl_get_i32(env, argv[i], names[i], &out[i])) return false;
  return true;
}

/* bpfSetMaxEntries(handle, map, n) -> 0 | -errno (before bpfLoad) */
static napi_value js_set_max_entries(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  void *m;
  int32_t n;
  if (!pl_args(env, info, 3, argv, NULL) || !find_named(env, argv, false, &m) || !pl_get_i32(env, argv[2], "n", &n)) return NULL;
  return m ? rc_result(env, lb.set_max_entries(m, (uint32_t)n)) : pl_errno(env, ENOENT);
}

/* bpfProgSetAutoload(handle, prog, load) -> 0 | -errno: whether bpfLoad loads this program (the
 * libbpf-tools pattern: ship tp_btf and raw_tp variants, load the one the kernel takes). */
static napi_value js_prog_set_autoload(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  void *p;
  bool load;
  if (!pl_args(env, info, 3, argv, NULL) || !find_named(env, argv, true, &p) || napi_get_value_bool(env, argv[2], &load) != napi_ok) return NULL;
  return p ? rc_result(env, lb.set_autoload(p, load)) : pl_errno(env, ENOENT);
}

/* bpfProgSetType(handle, prog, progType, expectedAttachType) -> 0 | -errno, before bpfLoad: for
 * sections this libbpf does not know (netfilter before libbpf 1.3). */
static napi_value js_prog_set_type(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  void *p;
  int32_t type, attach;
  if (!pl_args(env, info, 4, argv, NULL) || !find_named(env, argv, true, &p) || !pl_get_i32(env, argv[2], "progType", &type) ||
      !pl_get_i32(env, argv[3], "expectedAttachType", &attach))
    return NULL;
  if (!p) return pl_errno(env, ENOENT);
  int rc = lb.set_type(p, type);
  return rc_result(env, rc < 0 ? rc : lb.set_expected_attach_type(p, attach));
}

/* bpfProgSetAttachTarget(handle, prog, target) -> 0 | -errno, before bpfLoad: the kernel function
 * (fentry) or raw tracepoint (tp_btf) a program whose section names none is loaded for. */
static napi_value js_prog_set_attach_target(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  void *p;
  char target[128];
  if (!pl_args(env, info, 3, argv, NULL) || !find_named(env, argv, true, &p) || !get_string(env, argv[2], "target", target, sizeof target)) return NULL;
  return p ? rc_result(env, lb.set_attach_target(p, 0, target)) : pl_errno(env, ENOENT);
}

/* bpfMapSetInitialValue(handle, map, bytes) -> 0 | -errno, before bpfLoad: e.g. ".rodata", whose
 * values the verifier then sees as constants. The size must be the map's value size. */
static napi_value js_map_set_initial_value(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  void *m;
  pl_bytes val;
  if (!pl_args(env, info, 3, argv, NULL) || !find_named(env, argv, false, &m) || !pl_get_bytes(env, argv[2], "value", &val)) return NULL;
  return m ? rc_result(env, lb.set_initial_value(m, val.data, val.len)) : pl_errno(env, ENOENT);
}

/* bpfLoad(handle) -> 0 | -errno (the verifier's reasons are in bpfLog()) */
static napi_value js_load(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct bpf_object *obj;
  if (!pl_args(env, info, 1, argv, NULL) || !get_object(env, argv[0], &obj, NULL)) return NULL;
  int rc = lb.load(obj);
  return pl_int(env, rc < 0 ? rc : 0);
}

/* bpfProgFd(handle, name) / bpfMapFd(handle, name) -> fd (owned by the object) | -ENOENT */
static napi_value object_fd(napi_env env, napi_callback_info info, bool prog) {
  napi_value argv[2];
  void *x;
  if (!pl_args(env, info, 2, argv, NULL) || !find_named(env, argv, prog, &x)) return NULL;
  if (!x) return pl_errno(env, ENOENT);
  return pl_int(env, prog ? lb.prog_fd(x) : lb.map_fd(x));
}
static napi_value js_prog_fd(napi_env env, napi_callback_info info) { return object_fd(env, info, true); }
static napi_value js_map_fd(napi_env env, napi_callback_info info) { return object_fd(env, info, false); }

/* bpfClose(handle) -> 0: unloads what no link or fd still holds */
static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct bpf_object *obj;
  int32_t idx;
  if (!pl_args(env, info, 1, argv, NULL) || !get_object(env, argv[0], &obj, &idx)) return NULL;
  lb.close(obj);
  objects[idx] = NULL;
  return pl_int(env, 0);
}

/* ---- bpf(2) ------------------------------------------------------------------------------- */

static long sys_bpf(int cmd, union bpf_attr *attr) {
  return syscall(__NR_bpf, cmd, attr, sizeof *attr);
}

/* bpfLinkCreate(progFd, ifindex, attachType, flags) -> link fd | -errno
 * attachType: BPF_XDP (37), BPF_TCX_INGRESS (46), BPF_TCX_EGRESS (47). */
static napi_value js_link_create(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"progFd", "ifindex", "attachType", "flags"};
  napi_value argv[4];
  int32_t v[4];
  if (!pl_args(env, info, 4, argv, NULL) || !get_i32s(env, argv, 4, names, v)) return NULL;
  int32_t prog = v[0], ifindex = v[1], type = v[2], flags = v[3];
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.link_create.prog_fd = (uint32_t)prog;
  a.link_create.target_ifindex = (uint32_t)ifindex;
  a.link_create.attach_type = (uint32_t)type;
  a.link_create.flags = (uint32_t)flags;
  long fd = sys_bpf(BPF_LINK_CREATE, &a);
  return fd < 0 ? pl_errno(env, errno) : pl_int(env, fd);
}

/* bpfRawTracepointOpen(progFd, name | null) -> fd | -errno: attaches a raw_tp program to the
 * named tracepoint, or a tp_btf program to the one it was loaded for (name null). The attachment
 * lasts while the fd is open. */
static napi_value js_raw_tp_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t prog;
  char name[128];
  napi_valuetype t;
  if (!pl_args(env, info, 2, argv, NULL) || !pl_get_i32(env, argv[0], "progFd", &prog)) return NULL;
  napi_typeof(env, argv[1], &t);
  bool named = t != napi_null && t != napi_undefined;
  if (named && !get_string(env, argv[1], "name", name, sizeof name)) return NULL;
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.raw_tracepoint.prog_fd = (uint32_t)prog;
  a.raw_tracepoint.name = named ? (uint64_t)(uintptr_t)name : 0;
  long fd = sys_bpf(BPF_RAW_TRACEPOINT_OPEN, &a);
  return fd < 0 ? pl_errno(env, errno) : pl_int(env, fd);
}

/* The link_create layout of Linux 6.4+ for netfilter links (newer than the headers we build with). */
struct pl_link_create_nf {
  uint32_t prog_fd;
  uint32_t target_fd;
  uint32_t attach_type;
  uint32_t flags;
  uint32_t pf;
  uint32_t hooknum;
  int32_t priority;
  uint32_t nf_flags;
};

/* bpfNetfilterLink(progFd, pf, hooknum, priority, flags) -> link fd | -errno: a netfilter program
 * on one hook of the calling thread's network namespace (BPF_NETFILTER). */
static napi_value js_netfilter_link(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"progFd", "pf", "hooknum", "priority", "flags"};
  napi_value argv[5];
  int32_t v[5];
  if (!pl_args(env, info, 5, argv, NULL) || !get_i32s(env, argv, 5, names, v)) return NULL;
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  struct pl_link_create_nf nf = {
      .prog_fd = (uint32_t)v[0], .attach_type = 45 /* BPF_NETFILTER */, .pf = (uint32_t)v[1], .hooknum = (uint32_t)v[2], .priority = v[3], .nf_flags = (uint32_t)v[4]};
  _Static_assert(sizeof nf <= sizeof a, "link_create fits bpf_attr");
  memcpy(&a, &nf, sizeof nf);
  long fd = sys_bpf(BPF_LINK_CREATE, &a);
  return fd < 0 ? pl_errno(env, errno) : pl_int(env, fd);
}

/* perfTracepointOpen(id) -> perf event fd | -errno: the classic tracepoint with this tracefs id
 * (events/<system>/<name>/id), for all processes, as a BPF attach point (a program attached to
 * it runs on every CPU). */
static napi_value js_perf_tp_open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t id;
  if (!pl_args(env, info, 1, argv, NULL) || !pl_get_i32(env, argv[0], "id", &id)) return NULL;
  struct perf_event_attr pa;
  memset(&pa, 0, sizeof pa);
  pa.type = PERF_TYPE_TRACEPOINT;
  pa.size = sizeof pa;
  pa.config = (uint64_t)id;
  long fd = syscall(__NR_perf_event_open, &pa, -1 /* any process */, 0 /* cpu */, -1, PERF_FLAG_FD_CLOEXEC);
  return fd < 0 ? pl_errno(env, errno) : pl_int(env, fd);
}

/* bpfPerfEventLink(progFd, perfFd) -> link fd | -errno: a tracepoint (or kprobe) program on an
 * open perf event (BPF_PERF_EVENT); the link holds the event. */
static napi_value js_perf_event_link(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t prog, perf;
  if (!pl_args(env, info, 2, argv, NULL) || !pl_get_i32(env, argv[0], "progFd", &prog) ||
      !pl_get_i32(env, argv[1], "perfFd", &perf))
    return NULL;
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.link_create.prog_fd = (uint32_t)prog;
  a.link_create.target_fd = (uint32_t)perf;
  a.link_create.attach_type = BPF_PERF_EVENT;
  long fd = sys_bpf(BPF_LINK_CREATE, &a);
  return fd < 0 ? pl_errno(env, errno) : pl_int(env, fd);
}

/* bpfMapUpdate(fd, key, value, flags) / bpfMapLookup(fd, key, out) / bpfMapDelete(fd, key) /
 * bpfMapLookupAndDelete(fd, key, out): one call for what a lookup and a delete do (hash maps,
 * Linux 5.14; -EINVAL or -ENOTSUPP before) */
static napi_value map_elem(napi_env env, napi_callback_info info, int cmd, size_t want) {
  napi_value argv[4];
  int32_t fd, flags = 0;
  pl_bytes key, val = {0};
  if (!pl_args(env, info, want, argv, NULL) || !pl_get_i32(env, argv[0], "fd", &fd) ||
      !pl_get_bytes(env, argv[1], "key", &key))
    return NULL;
  if (want >= 3 && !pl_get_bytes(env, argv[2], "value", &val)) return NULL;
  if (want >= 4 && !pl_get_i32(env, argv[3], "flags", &flags)) return NULL;
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_fd = (uint32_t)fd;
  a.key = (uint64_t)(uintptr_t)key.data;
  a.value = (uint64_t)(uintptr_t)val.data;
  a.flags = (uint64_t)flags;
  return sys_bpf(cmd, &a) < 0 ? pl_errno(env, errno) : pl_int(env, 0);
}
static napi_value js_map_update(napi_env env, napi_callback_info info) { return map_elem(env, info, BPF_MAP_UPDATE_ELEM, 4); }
static napi_value js_map_lookup(napi_env env, napi_callback_info info) { return map_elem(env, info, BPF_MAP_LOOKUP_ELEM, 3); }
static napi_value js_map_delete(napi_env env, napi_callback_info info) { return map_elem(env, info, BPF_MAP_DELETE_ELEM, 2); }
static napi_value js_map_lookup_and_delete(napi_env env, napi_callback_info info) { return map_elem(env, info, BPF_MAP_LOOKUP_AND_DELETE_ELEM, 3); }

/*
 * bpfMapLookupBatch(fd, inBatch | null, outBatch, keys, values, io: Int32Array[1]) -> 0 | -errno
 * io[0]: entries wanted in, entries copied out. -ENOENT means the walk is complete (io[0] still
 * counts what this call copied). Batch tokens are opaque buffers of the map's key size.
 */
static napi_value js_map_lookup_batch(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  int32_t fd;
  pl_bytes in, out, keys, values;
  int32_t *io;
  size_t ion;
  if (!pl_args(env, info, 6, argv, NULL) || !pl_get_i32(env, argv[0], "fd", &fd) ||
      !pl_get_bytes_opt(env, argv[1], "inBatch", &in) || !pl_get_bytes(env, argv[2], "outBatch", &out) ||
      !pl_get_bytes(env, argv[3], "keys", &keys) || !pl_get_bytes(env, argv[4], "values", &values) ||
      !pl_get_i32_array(env, argv[5], "io", &io, &ion))
    return NULL;
  if (ion < 1 || io[0] < 0) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "bpfMapLookupBatch: io[0] must hold the entry count");
    return NULL;
  }
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.batch.map_fd = (uint32_t)fd;
  a.batch.in_batch = (uint64_t)(uintptr_t)in.data;
  a.batch.out_batch = (uint64_t)(uintptr_t)out.data;
  a.batch.keys = (uint64_t)(uintptr_t)keys.data;
  a.batch.values = (uint64_t)(uintptr_t)values.data;
  a.batch.count = (uint32_t)io[0];
  long rc = sys_bpf(BPF_MAP_LOOKUP_BATCH, &a);
  int err = rc < 0 ? errno : 0;
  io[0] = (int32_t)a.batch.count;
  return err ? pl_errno(env, err) : pl_int(env, 0);
}

/* bpfEnableStats() -> fd | -errno: run_time_ns/run_cnt are counted while the fd is open */
static napi_value js_enable_stats(napi_env env, napi_callback_info info) {
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.enable_stats.type = BPF_STATS_RUN_TIME;
  long fd = sys_bpf(BPF_ENABLE_STATS, &a);
  return fd < 0 ? pl_errno(env, errno) : pl_int(env, fd);
}

/* bpfProgStats(progFd, out: Float64Array[3]) -> 0 | -errno; out = [run_time_ns, run_cnt, id] */
static napi_value js_prog_stats(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  double *out;
  size_t n;
  if (!pl_args(env, info, 2, argv, NULL) || !pl_get_i32(env, argv[0], "progFd", &fd) ||
      !pl_get_f64_array(env, argv[1], "out", &out, &n))
    return NULL;
  if (n < 3) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "bpfProgStats: out needs 3 elements");
    return NULL;
  }
  struct bpf_prog_info pi;
  memset(&pi, 0, sizeof pi);
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.info.bpf_fd = (uint32_t)fd;
  a.info.info_len = sizeof pi;
  a.info.info = (uint64_t)(uintptr_t)&pi;
  if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) < 0) return pl_errno(env, errno);
  out[0] = (double)pi.run_time_ns;
  out[1] = (double)pi.run_cnt;
  out[2] = (double)pi.id;
  return pl_int(env, 0);
}

/* bpfTestRunSkb(progFd, frame, tstampNs, out: Float64Array[2]) -> 0 | -errno; out = [retval, ns]
 * Runs a tc program once on an Ethernet frame (BPF_PROG_TEST_RUN) with skb->tstamp set. */
static napi_value js_test_run_skb(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd;
  pl_bytes frame;
  double tstamp, *out;
  size_t n;
  if (!pl_args(env, info, 4, argv, NULL) || !pl_get_i32(env, argv[0], "progFd", &fd) ||
      !pl_get_bytes(env, argv[1], "frame", &frame) || napi_get_value_double(env, argv[2], &tstamp) != napi_ok ||
      !pl_get_f64_array(env, argv[3], "out", &out, &n))
    return NULL;
  if (n < 2 || tstamp < 0) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "bpfTestRunSkb: out needs 2 elements, tstamp >= 0");
    return NULL;
  }
  struct __sk_buff ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.tstamp = (uint64_t)tstamp;
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.test.prog_fd = (uint32_t)fd;
  a.test.data_in = (uint64_t)(uintptr_t)frame.data;
  a.test.data_size_in = (uint32_t)frame.len;
  a.test.ctx_in = (uint64_t)(uintptr_t)&ctx;
  a.test.ctx_size_in = sizeof ctx;
  a.test.repeat = 1;
  if (sys_bpf(BPF_PROG_TEST_RUN, &a) < 0) return pl_errno(env, errno);
  out[0] = (double)(int32_t)a.test.retval;
  out[1] = (double)a.test.duration;
  return pl_int(env, 0);
}

/* bpfTestRunXdp(progFd, frame, dataOut: Uint8Array, out: Float64Array[2]) -> 0 | -errno;
 * out = [retval, bytes written to dataOut]. Runs an XDP program once on an Ethernet frame
 * (BPF_PROG_TEST_RUN); dataOut receives the frame as the program left it. */
static napi_value js_test_run_xdp(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd;
  pl_bytes frame, dout;
  double *out;
  size_t n;
  if (!pl_args(env, info, 4, argv, NULL) || !pl_get_i32(env, argv[0], "progFd", &fd) ||
      !pl_get_bytes(env, argv[1], "frame", &frame) || !pl_get_bytes(env, argv[2], "dataOut", &dout) ||
      !pl_get_f64_array(env, argv[3], "out", &out, &n))
    return NULL;
  if (n < 2) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "bpfTestRunXdp: out needs 2 elements");
    return NULL;
  }
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.test.prog_fd = (uint32_t)fd;
  a.test.data_in = (uint64_t)(uintptr_t)frame.data;
  a.test.data_size_in = (uint32_t)frame.len;
  a.test.data_out = (uint64_t)(uintptr_t)dout.data;
  a.test.data_size_out = (uint32_t)dout.len;
  a.test.repeat = 1;
  if (sys_bpf(BPF_PROG_TEST_RUN, &a) < 0) return pl_errno(env, errno);
  out[0] = (double)(int32_t)a.test.retval;
  out[1] = (double)a.test.data_size_out;
  return pl_int(env, 0);
}

/* ---- clsact through libbpf (kernels without tcx) ---------------------------------------- */

/* bpfTcHook(ifindex, create) -> 0 | -errno: create (-EEXIST when already there) or destroy clsact */
static napi_value js_tc_hook(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t ifindex, create;
  if (!pl_args(env, info, 2, argv, NULL) || !pl_get_i32(env, argv[0], "ifindex", &ifindex) ||
      !pl_get_i32(env, argv[1], "create", &create))
    return NULL;
  if (!libbpf_ready()) return pl_errno(env, ELIBACC);
  struct pl_tc_hook h = {.sz = sizeof h, .ifindex = ifindex, .attach_point = 3};
  int rc = create ? lb.tc_hook_create(&h) : lb.tc_hook_destroy(&h);
  return pl_int(env, rc < 0 ? rc : 0);
}

/* bpfTcFilter(ifindex, egress, handle, priority, progFd) -> 0 | -errno; progFd < 0 detaches */
static napi_value js_tc_filter(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"ifindex", "egress", "handle", "priority", "progFd"};
  napi_value argv[5];
  int32_t v[5];
  if (!pl_args(env, info, 5, argv, NULL) || !get_i32s(env, argv, 5, names, v)) return NULL;
  int32_t ifindex = v[0], egress = v[1], handle = v[2], prio = v[3], prog = v[4];
  if (!libbpf_ready()) return pl_errno(env, ELIBACC);
  struct pl_tc_hook h = {.sz = sizeof h, .ifindex = ifindex, .attach_point = egress ? 2 : 1};
  struct pl_tc_opts o = {.sz = sizeof o, .handle = (uint32_t)handle, .priority = (uint32_t)prio};
  int rc;
  if (prog >= 0) {
    o.prog_fd = prog;
    rc = lb.tc_attach(&h, &o);
  } else {
    rc = lb.tc_detach(&h, &o);
  }
  return pl_int(env, rc < 0 ? rc : 0);
}

/* ---- ring buffer consumer ----------------------------------------------------------------- */

#define RB_BUSY (1u << 31)
#define RB_DISCARD (1u << 30)
#define RB_HDR 8
#define MAX_RINGS 8

typedef struct {
  uint8_t *cons; /* consumer page (rw) */
  uint8_t *prod; /* producer page, then the data area twice (ro) */
  size_t page;
  size_t size;
} ring_t;

static ring_t rings[MAX_RINGS];

/* ringbufOpen(mapFd) -> handle | -errno */
static napi_value js_ring_open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!pl_args(env, info, 1, argv, NULL) || !pl_get_i32(env, argv[0], "mapFd", &fd)) return NULL;
  int slot = -1;
  for (int i = 0; i < MAX_RINGS; i++)
    if (!rings[i].cons) { slot = i; break; }
  if (slot < 0) return pl_errno(env, EMFILE);
  struct bpf_map_info mi;
  memset(&mi, 0, sizeof mi);
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.info.bpf_fd = (uint32_t)fd;
  a.info.info_len = sizeof mi;
  a.info.info = (uint64_t)(uintptr_t)&mi;
  if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) < 0) return pl_errno(env, errno);
  if (mi.type != BPF_MAP_TYPE_RINGBUF) return pl_errno(env, EINVAL);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t size = mi.max_entries;
  void *cons = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (cons == MAP_FAILED) return pl_errno(env, errno);
  void *prod = mmap(NULL, page + 2 * size, PROT_READ, MAP_SHARED, fd, (off_t)page);
  if (prod == MAP_FAILED) {
    int e = errno;
    munmap(cons, page);
    return pl_errno(env, e);
  }
  rings[slot] = (ring_t){.cons = cons, .prod = prod, .page = page, .size = size};
  return pl_int(env, slot);
}

static ring_t *get_ring(napi_env env, napi_value v) {
  int32_t h;
  if (!pl_get_i32(env, v, "handle", &h)) return NULL;
  if (h < 0 || h >= MAX_RINGS || !rings[h].cons) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "not an open ring buffer handle");
    return NULL;
  }
  return &rings[h];
}

/* ringbufRead(handle, out: Uint8Array) -> bytes written to out (whole records only) */
static napi_value js_ring_read(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  pl_bytes out;
  if (!pl_args(env, info, 2, argv, NULL)) return NULL;
  ring_t *r = get_ring(env, argv[0]);
  if (!r || !pl_get_bytes(env, argv[1], "out", &out)) return NULL;
  uint64_t cons = __atomic_load_n((uint64_t *)r->cons, __ATOMIC_ACQUIRE);
  uint64_t prod = __atomic_load_n((uint64_t *)r->prod, __ATOMIC_ACQUIRE);
  const uint8_t *data = r->prod + r->page;
  size_t mask = r->size - 1, copied = 0;
  while (cons < prod) {
    const uint8_t *hdr = data + (cons & mask);
    uint32_t len = __atomic_load_n((const uint32_t *)hdr, __ATOMIC_ACQUIRE);
    if (len & RB_BUSY) break;
    uint32_t dlen = len & ~(RB_BUSY | RB_DISCARD);
    if (!(len & RB_DISCARD)) {
      size_t need = 8 + (((size_t)dlen + 7) & ~(size_t)7);
      if (copied + need > out.len) break;
      uint32_t head[2] = {dlen, 0};
      memcpy(out.data + copied, head, 8);
      memcpy(out.data + copied + 8, hdr + RB_HDR, dlen);
      memset(out.data + copied + 8 + dlen, 0, need - 8 - dlen);
      copied += need;
    }
    cons += ((uint64_t)dlen + RB_HDR + 7) & ~(uint64_t)7;
    __atomic_store_n((uint64_t *)r->cons, cons, __ATOMIC_RELEASE);
  }
  return pl_int(env, (int64_t)copied);
}

/* ringbufClose(handle) -> 0 */
static napi_value js_ring_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!pl_args(env, info, 1, argv, NULL)) return NULL;
  ring_t *r = get_ring(env, argv[0]);
  if (!r) return NULL;
  munmap(r->cons, r->page);
  munmap(r->prod, r->page + 2 * r->size);
  memset(r, 0, sizeof *r);
  return pl_int(env, 0);
}

napi_status pl_init_bpf(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback cb;
  } fns[] = {
      {"bpfAvailable", js_available},
      {"bpfLog", js_log},
      {"bpfOpen", js_open},
      {"bpfSetMaxEntries", js_set_max_entries},
      {"bpfLoad", js_load},
      {"bpfProgFd", js_prog_fd},
      {"bpfMapFd", js_map_fd},
      {"bpfClose", js_close},
      {"bpfLinkCreate", js_link_create},
      {"bpfMapUpdate", js_map_update},
      {"bpfMapLookup", js_map_lookup},
      {"bpfMapDelete", js_map_delete},
      {"bpfMapLookupAndDelete", js_map_lookup_and_delete},
      {"bpfMapLookupBatch", js_map_lookup_batch},
      {"bpfEnableStats", js_enable_stats},
      {"bpfProgStats", js_prog_stats},
      {"bpfTestRunSkb", js_test_run_skb},
      {"bpfTestRunXdp", js_test_run_xdp},
      {"bpfTcHook", js_tc_hook},
      {"bpfTcFilter", js_tc_filter},
      {"bpfProgSetAutoload", js_prog_set_autoload},
      {"bpfProgSetType", js_prog_set_type},
      {"bpfProgSetAttachTarget", js_prog_set_attach_target},
      {"bpfMapSetInitialValue", js_map_set_initial_value},
      {"bpfRawTracepointOpen", js_raw_tp_open},
      {"bpfNetfilterLink", js_netfilter_link},
      {"bpfPerfEventLink", js_perf_event_link},
      {"perfTracepointOpen", js_perf_tp_open},
      {"ringbufOpen", js_ring_open},
      {"ringbufRead", js_ring_read},
      {"ringbufClose", js_ring_close},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_status s = pl_export_fn(env, exports, fns[i].name, fns[i].cb);
    if (s != napi_ok) return s;
  }
  return napi_ok;
}
