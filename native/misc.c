/*
 * pathlens native shim: namespaces, clocks, timers, interface names, the privilege drop's
 * prctl and capset, malloc's arena limit.
 */
#include "shim.h"

#include <fcntl.h>
#include <malloc.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <linux/capability.h>
#include <time.h>
#include <unistd.h>

/* setns(fd, nstype) -> 0 | -errno. Affects the calling (main) thread only. */
static napi_value js_setns(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd, type;
  if (!pl_args(env, info, 2, argv, NULL)) return NULL;
  if (!pl_get_i32(env, argv[0], "fd", &fd) || !pl_get_i32(env, argv[1], "nstype", &type)) return NULL;
  return setns(fd, type) < 0 ? pl_errno(env, errno) : pl_int(env, 0);
}

/* clockGettime(clockid, out: Float64Array[2]) -> 0 | -errno; out = [sec, nsec] */
static napi_value js_clock_gettime(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t id;
  double *out;
  size_t n;
  if (!pl_args(env, info, 2, argv, NULL)) return NULL;
  if (!pl_get_i32(env, argv[0], "clockid", &id) || !pl_get_f64_array(env, argv[1], "out", &out, &n)) return NULL;
  if (n < 2) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "clockGettime: out needs 2 elements");
    return NULL;
  }
  struct timespec ts;
  if (clock_gettime(id, &ts) < 0) return pl_errno(env, errno);
  out[0] = (double)ts.tv_sec;
  out[1] = (double)ts.tv_nsec;
  return pl_int(env, 0);
}

/* timerfdCreate(clockid) -> fd | -errno (non-blocking, close-on-exec) */
static napi_value js_timerfd_create(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t id;
  if (!pl_args(env, info, 1, argv, NULL) || !pl_get_i32(env, argv[0], "clockid", &id)) return NULL;
  int fd = timerfd_create(id, TFD_NONBLOCK | TFD_CLOEXEC);
  return fd < 0 ? pl_errno(env, errno) : pl_int(env, fd);
}

/* timerfdSet(fd, sec, nsec, absolute) -> 0 | -errno; sec = nsec = 0 disarms. One-shot. */
static napi_value js_timerfd_set(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd, abs_flag;
  double sec, nsec;
  if (!pl_args(env, info, 4, argv, NULL)) return NULL;
  if (!pl_get_i32(env, argv[0], "fd", &fd) || napi_get_value_double(env, argv[1], &sec) != napi_ok ||
      napi_get_value_double(env, argv[2], &nsec) != napi_ok || !pl_get_i32(env, argv[3], "absolute", &abs_flag)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "timerfdSet(fd, sec, nsec, absolute)");
    return NULL;
  }
  if (sec < 0 || nsec < 0 || nsec >= 1e9) return pl_errno(env, EINVAL);
  struct itimerspec its;
  memset(&its, 0, sizeof its);
  its.it_value.tv_sec = (time_t)sec;
  its.it_value.tv_nsec = (long)nsec;
  int rc = timerfd_settime(fd, abs_flag ? TFD_TIMER_ABSTIME : 0, &its, NULL);
  return rc < 0 ? pl_errno(env, errno) : pl_int(env, 0);
}

/* dup(fd) -> new fd (close-on-exec) | -errno */
static napi_value js_dup(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!pl_args(env, info, 1, argv, NULL) || !pl_get_i32(env, argv[0], "fd", &fd)) return NULL;
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return d < 0 ? pl_errno(env, errno) : pl_int(env, d);
}

/* read(fd, out: Uint8Array) -> bytes read | -errno (used for timerfd expirations) */
static napi_value js_read(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  pl_bytes out;
  if (!pl_args(env, info, 2, argv, NULL)) return NULL;
  if (!pl_get_i32(env, argv[0], "fd", &fd) || !pl_get_bytes(env, argv[1], "out", &out)) return NULL;
  ssize_t n = read(fd, out.data, out.len);
  return n < 0 ? pl_errno(env, errno) : pl_int(env, n);
}

/* ifNameToIndex(name) -> ifindex | -errno, in the calling thread's network namespace */
static napi_value js_if_nametoindex(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char name[IF_NAMESIZE + 1];
  size_t len = 0;
  if (!pl_args(env, info, 1, argv, NULL)) return NULL;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "argument 'name' must be a string");
    return NULL;
  }
  if (len >= IF_NAMESIZE) return pl_errno(env, ENODEV);
  unsigned idx = if_nametoindex(name);
  return idx == 0 ? pl_errno(env, errno) : pl_int(env, idx);
}

/* prctl(option, arg2) -> result | -errno (PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP...) */
static napi_value js_prctl(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t option, arg2;
  if (!pl_args(env, info, 2, argv, NULL)) return NULL;
  if (!pl_get_i32(env, argv[0], "option", &option) || !pl_get_i32(env, argv[1], "arg2", &arg2)) return NULL;
  int rc = prctl(option, (unsigned long)(uint32_t)arg2, 0UL, 0UL, 0UL);
  return rc < 0 ? pl_errno(env, errno) : pl_int(env, rc);
}

/*
 * capset(lo, hi) -> 0 | -errno: the calling (main) thread's effective and permitted sets both
 * become the 64-bit set hi:lo, the inheritable set empty (capset(2), version 3).
 */
static napi_value js_capset(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t lo, hi;
  if (!pl_args(env, info, 2, argv, NULL)) return NULL;
  if (!pl_get_i32(env, argv[0], "lo", &lo) || !pl_get_i32(env, argv[1], "hi", &hi)) return NULL;
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  d[0].effective = d[0].permitted = (uint32_t)lo;
  d[1].effective = d[1].permitted = (uint32_t)hi;
  return syscall(SYS_capset, &h, d) < 0 ? pl_errno(env, errno) : pl_int(env, 0);
}

/*
 * mallocArenas(n) -> 1 | 0: at most n malloc arenas from now on (mallopt M_ARENA_MAX). glibc gives
 * each thread that allocates an arena of its own, and memory freed there stays there: a worker
 * thread's start-up leaves megabytes no other thread can reuse.
 */
static napi_value js_malloc_arenas(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t n;
  if (!pl_args(env, info, 1, argv, NULL) || !pl_get_i32(env, argv[0], "n", &n)) return NULL;
  return pl_int(env, n > 0 && mallopt(M_ARENA_MAX, n) == 1 ? 1 : 0);
}

napi_status pl_init_misc(napi_env env, napi_value exports) {
  napi_status s;
  if ((s = pl_export_fn(env, exports, "setns", js_setns)) != napi_ok) return s;
  if ((s = pl_export_fn(env, exports, "clockGettime", js_clock_gettime)) != napi_ok) return s;
  if ((s = pl_export_fn(env, exports, "timerfdCreate", js_timerfd_create)) != napi_ok) return s;
  if ((s = pl_export_fn(env, exports, "timerfdSet", js_timerfd_set)) != napi_ok) return s;
  if ((s = pl_export_fn(env, exports, "read", js_read)) != napi_ok) return s;
  if ((s = pl_export_fn(env, exports, "dup", js_dup)) != napi_ok) return s;
  if ((s = pl_export_fn(env, exports, "prctl", js_prctl)) != napi_ok) return s;
  if ((s = pl_export_fn(env, exports, "capset", js_capset)) != napi_ok) return s;
  if ((s = pl_export_fn(env, exports, "mallocArenas", js_malloc_arenas)) != napi_ok) return s;
  return pl_export_fn(env, exports, "ifNameToIndex", js_if_nametoindex);
}
