/*
 * pathlens native shim: fd readiness through the environment's libuv loop.
 *
 *   const p = new Poller(fd, (status, events) => { ... });
 *   p.start(events)   // UV_READABLE = 1, UV_WRITABLE = 2
 *   p.stop(); p.ref(); p.unref(); p.close()
 *
 * The Poller owns its fd from construction on: close() stops the handle, closes it through
 * uv_close, and closes the fd in the close callback, never while libuv still watches it.
 *
 * libuv stops a uv_poll_t by itself and reports UV_EBADF when poll() returns POLLERR without
 * POLLPRI. For a socket with IP_RECVERR that only means "the error queue is not empty". The
 * callback therefore receives the status as it is, the handle is marked stopped, and JavaScript
 * decides: drain the error queue and start() again, or treat it as fatal. C never re-arms by itself
 * (re-arming after a real error would spin).
 */
#include "shim.h"

#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

typedef struct {
  uv_poll_t handle;
  napi_env env;
  napi_ref wrapper;   /* strong while the handle is active, so the object outlives callbacks */
  napi_ref callback;
  napi_async_context async;
  int fd;
  bool active;
  bool closing;
  bool unrefed;
  bool finalized;
} poller_t;

static void poller_cleanup_hook(void *arg);

static void on_close(uv_handle_t *h) {
  poller_t *p = h->data;
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
  if (p->finalized) free(p);
}

static void poller_begin_close(poller_t *p) {
  if (p->closing) return;
  p->closing = true;
  if (p->active) uv_poll_stop(&p->handle);
  p->active = false;
  uv_close((uv_handle_t *)&p->handle, on_close);
}

static void set_active(poller_t *p, bool on) {
  if (p->active == on) return;
  p->active = on;
  uint32_t rc;
  if (on)
    napi_reference_ref(p->env, p->wrapper, &rc);
  else
    napi_reference_unref(p->env, p->wrapper, &rc);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  poller_t *p = h->data;
  if (p->closing) return;
  if (status < 0) set_active(p, false); /* libuv has stopped the handle */
  napi_env env = p->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[2], result;
  if (napi_get_reference_value(env, p->callback, &cb) == napi_ok && cb != NULL &&
      napi_get_reference_value(env, p->wrapper, &recv) == napi_ok && recv != NULL) {
    napi_create_int32(env, status, &argv[0]);
    napi_create_int32(env, events, &argv[1]);
    if (napi_make_callback(env, p->async, recv, cb, 2, argv, &result) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void poller_finalize(napi_env env, void *data, void *hint) {
  poller_t *p = data;
  napi_remove_env_cleanup_hook(env, poller_cleanup_hook, p);
  napi_delete_reference(env, p->callback);
  napi_delete_reference(env, p->wrapper);
  napi_async_destroy(env, p->async);
  p->finalized = true;
  if (!p->closing) {
    poller_begin_close(p); /* frees in on_close */
  } else if (p->fd < 0) {
    free(p); /* close already completed */
  }
}

static void poller_cleanup_hook(void *arg) {
  poller_t *p = arg;
  if (!p->closing) poller_begin_close(p);
}

static poller_t *unwrap(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  napi_value self;
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok) return NULL;
  poller_t *p = NULL;
  if (napi_unwrap(env, self, (void **)&p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_THIS", "not a Poller");
    return NULL;
  }
  return p;
}

/* new Poller(fd, callback) */
static napi_value poller_new(napi_env env, napi_callback_info info) {
  napi_value argv[2], self;
  size_t argc = 2;
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok) return NULL;
  if (argc < 2 || !pl_get_i32(env, argv[0], "fd", &fd)) {
    if (argc < 2) napi_throw_type_error(env, "ERR_MISSING_ARGS", "Poller(fd, callback)");
    return NULL;
  }
  napi_valuetype t;
  PL_CALL(env, napi_typeof(env, argv[1], &t));
  if (t != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "argument 'callback' must be a function");
    return NULL;
  }
  uv_loop_t *loop;
  PL_CALL(env, napi_get_uv_event_loop(env, &loop));
  poller_t *p = calloc(1, sizeof *p);
  if (!p) {
    napi_throw_error(env, "ERR_PATHLENS_NOMEM", "out of memory");
    return NULL;
  }
  p->env = env;
  p->fd = fd;
  int rc = uv_poll_init(loop, &p->handle, fd);
  if (rc != 0) {
    free(p);
    napi_throw_error(env, "ERR_PATHLENS_POLL_INIT", uv_strerror(rc));
    return NULL;
  }
  p->handle.data = p;
  napi_value name;
  PL_CALL(env, napi_create_string_utf8(env, "pathlens.poller", NAPI_AUTO_LENGTH, &name));
  PL_CALL(env, napi_async_init(env, self, name, &p->async));
  PL_CALL(env, napi_create_reference(env, argv[1], 1, &p->callback));
  PL_CALL(env, napi_wrap(env, self, p, poller_finalize, NULL, &p->wrapper));
  /* napi_wrap's reference starts weak (count 0); set_active() makes it strong while polling. */
  PL_CALL(env, napi_add_env_cleanup_hook(env, poller_cleanup_hook, p));
  return self;
}

/* start(events) -> 0 | -errno */
static napi_value poller_start(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  poller_t *p = unwrap(env, info, 1, argv);
  int32_t events;
  if (!p || !pl_get_i32(env, argv[0], "events", &events)) return NULL;
  if (p->closing) return pl_errno(env, EBADF);
  int rc = uv_poll_start(&p->handle, events & (UV_READABLE | UV_WRITABLE), on_poll);
  if (rc != 0) return pl_int(env, rc); /* libuv errors are already negative errno values */
  set_active(p, true);
  return pl_int(env, 0);
}

static napi_value poller_stop(napi_env env, napi_callback_info info) {
  poller_t *p = unwrap(env, info, 0, NULL);
  if (!p) return NULL;
  if (!p->closing && p->active) uv_poll_stop(&p->handle);
  set_active(p, false);
  return pl_int(env, 0);
}

static napi_value poller_ref(napi_env env, napi_callback_info info) {
  poller_t *p = unwrap(env, info, 0, NULL);
  if (!p) return NULL;
  if (!p->closing) uv_ref((uv_handle_t *)&p->handle);
  return pl_int(env, 0);
}

static napi_value poller_unref(napi_env env, napi_callback_info info) {
  poller_t *p = unwrap(env, info, 0, NULL);
  if (!p) return NULL;
  if (!p->closing) uv_unref((uv_handle_t *)&p->handle);
  return pl_int(env, 0);
}

/* close(): stop, uv_close, then close(fd) in the close callback. Idempotent. */
static napi_value poller_close(napi_env env, napi_callback_info info) {
  poller_t *p = unwrap(env, info, 0, NULL);
  if (!p) return NULL;
  if (!p->closing) {
    set_active(p, false);
    poller_begin_close(p);
  }
  return pl_int(env, 0);
}

napi_status pl_init_poll(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"start", NULL, poller_start, NULL, NULL, NULL, napi_default, NULL},
      {"stop", NULL, poller_stop, NULL, NULL, NULL, napi_default, NULL},
      {"ref", NULL, poller_ref, NULL, NULL, NULL, napi_default, NULL},
      {"unref", NULL, poller_unref, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, poller_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value cls;
  napi_status s = napi_define_class(env, "Poller", NAPI_AUTO_LENGTH, poller_new, NULL,
                                    sizeof methods / sizeof methods[0], methods, &cls);
  if (s != napi_ok) return s;
  return napi_set_named_property(env, exports, "Poller", cls);
}
