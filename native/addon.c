/*
 * pathlens native shim: module registration and argument helpers.
 */
#include "shim.h"

#include <stdio.h>

napi_value pl_int(napi_env env, int64_t v) {
  napi_value out;
  if (napi_create_int64(env, v, &out) != napi_ok) return NULL;
  return out;
}

napi_value pl_errno(napi_env env, int err) { return pl_int(env, -(int64_t)err); }

static void pl_type_error(napi_env env, const char *name, const char *what) {
  char msg[160];
  snprintf(msg, sizeof msg, "argument '%s' must be %s", name, what);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
}

bool pl_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, napi_value *self) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, self, NULL) != napi_ok) return false;
  if (argc < want) {
    char msg[96];
    snprintf(msg, sizeof msg, "expected %zu arguments, got %zu", want, argc);
    napi_throw_type_error(env, "ERR_MISSING_ARGS", msg);
    return false;
  }
  return true;
}

bool pl_get_i32(napi_env env, napi_value v, const char *name, int32_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    pl_type_error(env, name, "a number");
    return false;
  }
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static bool pl_typed(napi_env env, napi_value v, const char *name, napi_typedarray_type want,
                     bool any_kind, void **data, size_t *count, size_t *bytes) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) {
    pl_type_error(env, name, "a typed array");
    return false;
  }
  napi_typedarray_type kind;
  size_t length = 0, offset = 0;
  napi_value ab;
  void *base = NULL;
  if (napi_get_typedarray_info(env, v, &kind, &length, &base, &ab, &offset) != napi_ok) return false;
  if (!any_kind && kind != want) {
    pl_type_error(env, name, want == napi_int32_array ? "an Int32Array" : "a Float64Array");
    return false;
  }
  size_t elem = 1;
  switch (kind) {
    case napi_int16_array: case napi_uint16_array: elem = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: elem = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: elem = 8; break;
    default: elem = 1;
  }
  *data = base;
  *count = length;
  *bytes = length * elem;
  return true;
}

bool pl_get_bytes(napi_env env, napi_value v, const char *name, pl_bytes *out) {
  void *d; size_t n, b;
  if (!pl_typed(env, v, name, napi_uint8_array, true, &d, &n, &b)) return false;
  out->data = d;
  out->len = b;
  return true;
}

bool pl_get_bytes_opt(napi_env env, napi_value v, const char *name, pl_bytes *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined)) {
    out->data = NULL;
    out->len = 0;
    return true;
  }
  return pl_get_bytes(env, v, name, out);
}

bool pl_get_i32_array(napi_env env, napi_value v, const char *name, int32_t **data, size_t *count) {
  void *d; size_t b;
  if (!pl_typed(env, v, name, napi_int32_array, false, &d, count, &b)) return false;
  *data = d;
  return true;
}

bool pl_get_f64_array(napi_env env, napi_value v, const char *name, double **data, size_t *count) {
  void *d; size_t b;
  if (!pl_typed(env, v, name, napi_float64_array, false, &d, count, &b)) return false;
  *data = d;
  return true;
}

napi_status pl_export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_status s = napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  if (s != napi_ok) return s;
  return napi_set_named_property(env, exports, name, fn);
}

static napi_value init(napi_env env, napi_value exports) {
  if (pl_init_sock(env, exports) != napi_ok) return NULL;
  if (pl_init_mmsg(env, exports) != napi_ok) return NULL;
  if (pl_init_poll(env, exports) != napi_ok) return NULL;
  if (pl_init_misc(env, exports) != napi_ok) return NULL;
  if (pl_init_bpf(env, exports) != napi_ok) return NULL;
  if (pl_init_xsk(env, exports) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
