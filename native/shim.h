/*
 * pathlens native shim: shared helpers.
 *
 * Conventions (every exported function follows them):
 *  - Results are numbers: a count or 0 on success, -errno on failure. C never throws for a
 *    syscall failure; TypeScript turns -errno into a SystemError with code and syscall.
 *  - A TypeError is thrown only for a programming error (wrong argument kind, out-of-range
 *    offsets); those are checked here so that no caller-supplied length can make C touch memory
 *    outside the caller's typed arrays.
 *  - Buffers are caller-owned typed arrays; C keeps no pointer to them past the call.
 */
#ifndef PATHLENS_SHIM_H
#define PATHLENS_SHIM_H

#define _GNU_SOURCE
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>

#define PL_MAX_ARGS 12

#define PL_CALL(env, call)                                                       \
  do {                                                                           \
    if ((call) != napi_ok) {                                                     \
      const napi_extended_error_info *pl_info_ = NULL;                          \
      napi_get_last_error_info((env), &pl_info_);                               \
      bool pl_pending_ = false;                                                  \
      napi_is_exception_pending((env), &pl_pending_);                           \
      if (!pl_pending_)                                                          \
        napi_throw_error((env), "ERR_PATHLENS_NAPI",                           \
                         pl_info_ && pl_info_->error_message                     \
                             ? pl_info_->error_message                           \
                             : "N-API call failed");                             \
      return NULL;                                                               \
    }                                                                            \
  } while (0)

/* A typed array argument: base pointer and length in bytes. */
typedef struct {
  uint8_t *data;
  size_t len;
} pl_bytes;

napi_value pl_int(napi_env env, int64_t v);
napi_value pl_errno(napi_env env, int err); /* returns -err as a number */

/* Argument readers: return false after throwing a TypeError. */
bool pl_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, napi_value *self);
bool pl_get_i32(napi_env env, napi_value v, const char *name, int32_t *out);
bool pl_get_bytes(napi_env env, napi_value v, const char *name, pl_bytes *out);
bool pl_get_bytes_opt(napi_env env, napi_value v, const char *name, pl_bytes *out);
bool pl_get_i32_array(napi_env env, napi_value v, const char *name, int32_t **data, size_t *count);
bool pl_get_f64_array(napi_env env, napi_value v, const char *name, double **data, size_t *count);

/* Registration of each source file's exports. */
napi_status pl_init_sock(napi_env env, napi_value exports);
napi_status pl_init_mmsg(napi_env env, napi_value exports);
napi_status pl_init_poll(napi_env env, napi_value exports);
napi_status pl_init_misc(napi_env env, napi_value exports);
napi_status pl_init_bpf(napi_env env, napi_value exports);
napi_status pl_init_xsk(napi_env env, napi_value exports);

napi_status pl_export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb);

#endif
