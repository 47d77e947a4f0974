/*
 * pathlens native shim: socket life cycle and options.
 *
 * Every socket is created non-blocking and close-on-exec. Addresses cross the boundary as raw
 * sockaddr bytes built and parsed in TypeScript (src/packet/sockaddr.ts).
 */
#include "shim.h"

#include <sys/socket.h>
#include <unistd.h>

/* socket(domain, type, protocol) -> fd | -errno */
static napi_value js_socket(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t domain, type, proto;
  if (!pl_args(env, info, 3, argv, NULL)) return NULL;
  if (!pl_get_i32(env, argv[0], "domain", &domain) || !pl_get_i32(env, argv[1], "type", &type) ||
      !pl_get_i32(env, argv[2], "protocol", &proto))
    return NULL;
  int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  return fd < 0 ? pl_errno(env, errno) : pl_int(env, fd);
}

/* close(fd) -> 0 | -errno. Only for fds that no Poller owns (a Poller closes its own fd). */
static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!pl_args(env, info, 1, argv, NULL) || !pl_get_i32(env, argv[0], "fd", &fd)) return NULL;
  return close(fd) < 0 ? pl_errno(env, errno) : pl_int(env, 0);
}

/* setsockopt(fd, level, name, value: Uint8Array) -> 0 | -errno */
static napi_value js_setsockopt(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd, level, name;
  pl_bytes val;
  if (!pl_args(env, info, 4, argv, NULL)) return NULL;
  if (!pl_get_i32(env, argv[0], "fd", &fd) || !pl_get_i32(env, argv[1], "level", &level) ||
      !pl_get_i32(env, argv[2], "name", &name) || !pl_get_bytes(env, argv[3], "value", &val))
    return NULL;
  int rc = setsockopt(fd, level, name, val.data, (socklen_t)val.len);
  return rc < 0 ? pl_errno(env, errno) : pl_int(env, 0);
}

/* getsockopt(fd, level, name, out: Uint8Array) -> length written | -errno */
static napi_value js_getsockopt(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd, level, name;
  pl_bytes out;
  if (!pl_args(env, info, 4, argv, NULL)) return NULL;
  if (!pl_get_i32(env, argv[0], "fd", &fd) || !pl_get_i32(env, argv[1], "level", &level) ||
      !pl_get_i32(env, argv[2], "name", &name) || !pl_get_bytes(env, argv[3], "out", &out))
    return NULL;
  socklen_t len = (socklen_t)out.len;
  int rc = getsockopt(fd, level, name, out.data, &len);
  if (rc < 0) return pl_errno(env, errno);
  return pl_int(env, len > out.len ? (int64_t)out.len : (int64_t)len);
}

typedef int (*addr_fn)(int, const struct sockaddr *, socklen_t);

static napi_value addr_call(napi_env env, napi_callback_info info, addr_fn fn) {
  napi_value argv[2];
  int32_t fd;
  pl_bytes addr;
  if (!pl_args(env, info, 2, argv, NULL)) return NULL;
  if (!pl_get_i32(env, argv[0], "fd", &fd) || !pl_get_bytes(env, argv[1], "addr", &addr)) return NULL;
  int rc = fn(fd, (const struct sockaddr *)addr.data, (socklen_t)addr.len);
  return rc < 0 ? pl_errno(env, errno) : pl_int(env, 0);
}

/* bind(fd, sockaddr bytes) -> 0 | -errno */
static napi_value js_bind(napi_env env, napi_callback_info info) { return addr_call(env, info, bind); }

/* connect(fd, sockaddr bytes) -> 0 | -errno (-EINPROGRESS for a TCP connect under way) */
static napi_value js_connect(napi_env env, napi_callback_info info) { return addr_call(env, info, connect); }

/* getsockname(fd, out) -> address length | -errno */
static napi_value js_getsockname(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  pl_bytes out;
  if (!pl_args(env, info, 2, argv, NULL)) return NULL;
  if (!pl_get_i32(env, argv[0], "fd", &fd) || !pl_get_bytes(env, argv[1], "out", &out)) return NULL;
  socklen_t len = (socklen_t)out.len;
  if (getsockname(fd, (struct sockaddr *)out.data, &len) < 0) return pl_errno(env, errno);
  return pl_int(env, len > out.len ? (int64_t)out.len : (int64_t)len);
}

napi_status pl_init_sock(napi_env env, napi_value exports) {
  napi_status s;
  if ((s = pl_export_fn(env, exports, "socket", js_socket)) != napi_ok) return s;
  if ((s = pl_export_fn(env, exports, "close", js_close)) != napi_ok) return s;
  if ((s = pl_export_fn(env, exports, "setsockopt", js_setsockopt)) != napi_ok) return s;
  if ((s = pl_export_fn(env, exports, "getsockopt", js_getsockopt)) != napi_ok) return s;
  if ((s = pl_export_fn(env, exports, "bind", js_bind)) != napi_ok) return s;
  if ((s = pl_export_fn(env, exports, "connect", js_connect)) != napi_ok) return s;
  return pl_export_fn(env, exports, "getsockname", js_getsockname);
}
