/*
 * pathlens native shim: batched datagram I/O (sendmmsg / recvmmsg, error queue included).
 *
 * The caller owns every buffer. A batch is described by slabs (typed arrays) and an Int32Array of
 * per-message fields; C checks each offset and length against the slab it points into before it
 * builds the iovecs, so a wrong number from JS yields a TypeError, never a stray read or write.
 */
#include "shim.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define PL_MMSG_MAX 256

static bool in_bounds(size_t off, size_t len, size_t cap) { return off <= cap && len <= cap - off; }

static void stamp(double *t) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  t[0] = (double)ts.tv_sec;
  t[1] = (double)ts.tv_nsec;
}

/* The arguments of sendmmsg and sendeach, checked and turned into message headers. */
typedef struct {
  int32_t fd, count, flags;
  double *times;
  size_t times_n;
  struct mmsghdr msgs[PL_MMSG_MAX];
  struct iovec iov[PL_MMSG_MAX];
} pl_send_args;

static bool send_args(napi_env env, napi_callback_info info, const char *fn, size_t times_per_msg, pl_send_args *a) {
  napi_value argv[8];
  int32_t *meta;
  size_t meta_n;
  pl_bytes data, names, ctrl;
  if (!pl_args(env, info, 8, argv, NULL)) return false;
  if (!pl_get_i32(env, argv[0], "fd", &a->fd) || !pl_get_i32(env, argv[1], "count", &a->count) ||
      !pl_get_i32_array(env, argv[2], "meta", &meta, &meta_n) ||
      !pl_get_bytes(env, argv[3], "data", &data) || !pl_get_bytes_opt(env, argv[4], "names", &names) ||
      !pl_get_bytes_opt(env, argv[5], "ctrl", &ctrl) || !pl_get_i32(env, argv[6], "flags", &a->flags) ||
      !pl_get_f64_array(env, argv[7], "times", &a->times, &a->times_n))
    return false;
  if (a->count < 0 || a->count > PL_MMSG_MAX || (size_t)a->count * 6 > meta_n ||
      a->times_n < 4 || a->times_n < (size_t)a->count * times_per_msg) {
    char msg[80];
    snprintf(msg, sizeof msg, "%s: count exceeds meta/times capacity", fn);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return false;
  }
  for (int i = 0; i < a->count; i++) {
    const int32_t *m = meta + (size_t)i * 6;
    if (m[0] < 0 || m[1] < 0 || m[2] < 0 || m[3] < 0 || m[4] < 0 || m[5] < 0 ||
        !in_bounds((size_t)m[0], (size_t)m[1], data.len) || !in_bounds((size_t)m[2], (size_t)m[3], names.len) ||
        !in_bounds((size_t)m[4], (size_t)m[5], ctrl.len)) {
      char msg[80];
      snprintf(msg, sizeof msg, "%s: message field outside its slab", fn);
      napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
      return false;
    }
    a->iov[i].iov_base = data.data + m[0];
    a->iov[i].iov_len = (size_t)m[1];
    memset(&a->msgs[i], 0, sizeof a->msgs[i]);
    a->msgs[i].msg_hdr.msg_iov = &a->iov[i];
    a->msgs[i].msg_hdr.msg_iovlen = 1;
    if (m[3] > 0) {
      a->msgs[i].msg_hdr.msg_name = names.data + m[2];
      a->msgs[i].msg_hdr.msg_namelen = (socklen_t)m[3];
    }
    if (m[5] > 0) {
      a->msgs[i].msg_hdr.msg_control = ctrl.data + m[4];
      a->msgs[i].msg_hdr.msg_controllen = (size_t)m[5];
    }
  }
  return true;
}

/*
 * sendmmsg(fd, count, meta: Int32Array, data, names, ctrl, flags, times: Float64Array)
 *   meta holds 6 fields per message: dataOff, dataLen, nameOff, nameLen, ctrlOff, ctrlLen
 *   (nameLen 0: no address; ctrlLen 0: no control message).
 *   times[0..1] receive CLOCK_REALTIME (sec, nsec) taken just before the syscall, times[2..3] just
 *   after it.
 *   -> number of messages sent | -errno
 */
static napi_value js_sendmmsg(napi_env env, napi_callback_info info) {
  pl_send_args a;
  if (!send_args(env, info, "sendmmsg", 0, &a)) return NULL;
  stamp(a.times);
  int rc = sendmmsg(a.fd, a.msgs, (unsigned)a.count, a.flags | MSG_DONTWAIT);
  int err = errno;
  stamp(a.times + 2);
  return rc < 0 ? pl_errno(env, err) : pl_int(env, rc);
}

/*
 * sendeach(fd, count, meta: Int32Array, data, names, ctrl, flags, times: Float64Array)
 *   The messages of sendmmsg, each by its own sendmsg, for sockets whose kernel gives no send
 *   timestamp: times[2i..2i+1] receive CLOCK_REALTIME just before message i's syscall (times needs
 *   max(4, 2 * count) elements), so a message's send time does not include the kernel's work on
 *   the ones before it, nor a preemption between them. Stops at the first failure.
 *   -> number of messages sent | -errno (the first message failed)
 */
static napi_value js_sendeach(napi_env env, napi_callback_info info) {
  pl_send_args a;
  if (!send_args(env, info, "sendeach", 2, &a)) return NULL;
  int sent = 0;
  while (sent < a.count) {
    stamp(a.times + 2 * sent);
    if (sendmsg(a.fd, &a.msgs[sent].msg_hdr, a.flags | MSG_DONTWAIT) < 0) {
      if (sent == 0) return pl_errno(env, errno);
      break;
    }
    sent++;
  }
  return pl_int(env, sent);
}

/*
 * recvmmsg(fd, count, flags, data, dataSlot, ctrl, ctrlSlot, names, nameSlot, meta: Int32Array)
 *   Message i is received into data[i*dataSlot ..], ctrl[i*ctrlSlot ..], names[i*nameSlot ..].
 *   meta receives 4 fields per message: dataLen, ctrlLen, nameLen, msgFlags. A dataLen above
 *   dataSlot is never reported: MSG_TRUNC in msgFlags says the datagram was cut.
 *   -> number of messages received | -errno (-EAGAIN when none is waiting)
 */
static napi_value js_recvmmsg(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  int32_t fd, count, flags, dslot, cslot, nslot;
  int32_t *meta;
  size_t meta_n;
  pl_bytes data, ctrl, names;
  if (!pl_args(env, info, 10, argv, NULL)) return NULL;
  if (!pl_get_i32(env, argv[0], "fd", &fd) || !pl_get_i32(env, argv[1], "count", &count) ||
      !pl_get_i32(env, argv[2], "flags", &flags) || !pl_get_bytes(env, argv[3], "data", &data) ||
      !pl_get_i32(env, argv[4], "dataSlot", &dslot) || !pl_get_bytes_opt(env, argv[5], "ctrl", &ctrl) ||
      !pl_get_i32(env, argv[6], "ctrlSlot", &cslot) || !pl_get_bytes_opt(env, argv[7], "names", &names) ||
      !pl_get_i32(env, argv[8], "nameSlot", &nslot) || !pl_get_i32_array(env, argv[9], "meta", &meta, &meta_n))
    return NULL;
  if (count <= 0 || count > PL_MMSG_MAX || dslot < 0 || cslot < 0 || nslot < 0 ||
      (size_t)count * 4 > meta_n || (size_t)count * (size_t)dslot > data.len ||
      (size_t)count * (size_t)cslot > ctrl.len || (size_t)count * (size_t)nslot > names.len) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "recvmmsg: count exceeds slab capacity");
    return NULL;
  }
  struct mmsghdr msgs[PL_MMSG_MAX];
  struct iovec iov[PL_MMSG_MAX];
  memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)count);
  for (int i = 0; i < count; i++) {
    iov[i].iov_base = data.data + (size_t)i * (size_t)dslot;
    iov[i].iov_len = (size_t)dslot;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    if (nslot > 0) {
      msgs[i].msg_hdr.msg_name = names.data + (size_t)i * (size_t)nslot;
      msgs[i].msg_hdr.msg_namelen = (socklen_t)nslot;
    }
    if (cslot > 0) {
      msgs[i].msg_hdr.msg_control = ctrl.data + (size_t)i * (size_t)cslot;
      msgs[i].msg_hdr.msg_controllen = (size_t)cslot;
    }
  }
  int rc = recvmmsg(fd, msgs, (unsigned)count, flags | MSG_DONTWAIT, NULL);
  if (rc < 0) return pl_errno(env, errno);
  for (int i = 0; i < rc; i++) {
    int32_t *m = meta + (size_t)i * 4;
    size_t len = msgs[i].msg_len;
    m[0] = (int32_t)(len > (size_t)dslot ? (size_t)dslot : len);
    m[1] = (int32_t)msgs[i].msg_hdr.msg_controllen;
    socklen_t nl = msgs[i].msg_hdr.msg_namelen;
    m[2] = (int32_t)(nl > (socklen_t)nslot ? (socklen_t)nslot : nl);
    m[3] = msgs[i].msg_hdr.msg_flags;
  }
  return pl_int(env, rc);
}

napi_status pl_init_mmsg(napi_env env, napi_value exports) {
  napi_status s;
  if ((s = pl_export_fn(env, exports, "sendmmsg", js_sendmmsg)) != napi_ok) return s;
  if ((s = pl_export_fn(env, exports, "sendeach", js_sendeach)) != napi_ok) return s;
  return pl_export_fn(env, exports, "recvmmsg", js_recvmmsg);
}
