/*
 * pathlens native shim: AF_XDP sockets, kept as thin as the rest of the shim.
 *
 *   xskOpen(ifindex, queue, frames, ringSize, bindFlags, out: Int32Array[2]) -> 0 | -errno
 *       out = [handle, fd]. One UMEM of `frames` chunks of XSK_FRAME bytes, owned by the socket:
 *       the first half receives (it is given to the fill ring), the second half sends.
 *   xskSend(handle, data, slot, lens: Int32Array, count, out: Float64Array[3]) -> posted | -errno
 *       Takes back the frames the kernel has sent (completion ring), copies frames [0, posted) from
 *       data (message i at i * slot) into free send frames, posts them on the TX ring, and asks
 *       the kernel to send (sendto with no data; in copy mode each call sends at most a small batch,
 *       so it is repeated while the ring is not empty and the kernel takes frames).
 *       out = [CLOCK_MONOTONIC sec, nsec just before the first send call, send calls made].
 *   xskSendEach(handle, data, slot, lens, count, times: Float64Array[2 * count + 4]) -> posted | -errno
 *       The same frames one at a time, each sent by its own sendto and timed just before it
 *       (copy mode sends a frame inside the call: a batch's later frames leave later).
 *   xskRecv(handle, data, slot, lens: Int32Array, count) -> frames | -errno
 *       Copies up to `count` received frames into data (frame i at i * slot, cut to slot bytes),
 *       lens[i] = the bytes copied, and gives the frames back to the fill ring.
 *   xskClose(handle) -> 0
 *
 * No protocol logic: bytes in, bytes out, ring indices in between. The rings and the UMEM are
 * mapped here and never handed to JavaScript, so no script can outlive or overrun them.
 */
#include "shim.h"

#include <linux/if_xdp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif

#define XSK_FRAME 2048u
#define MAX_XSK 8

typedef struct {
  uint32_t *producer;
  uint32_t *consumer;
  void *descs;
  uint32_t size;
  void *map;
  size_t map_len;
} xring_t;

typedef struct {
  bool open;
  int fd;
  uint8_t *umem;
  size_t umem_len;
  uint32_t frames;
  xring_t fill, comp, rx, tx;
  uint64_t *free_tx;
  uint32_t n_free;
} xsk_t;

static xsk_t socks[MAX_XSK];

static int map_ring(int fd, const struct xdp_ring_offset *o, uint32_t size, size_t elem, off_t pgoff, xring_t *r) {
  r->map_len = o->desc + (size_t)size * elem;
  r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, pgoff);
  if (r->map == MAP_FAILED) {
    r->map = NULL;
    return -errno;
  }
  r->producer = (uint32_t *)((uint8_t *)r->map + o->producer);
  r->consumer = (uint32_t *)((uint8_t *)r->map + o->consumer);
  r->descs = (uint8_t *)r->map + o->desc;
  r->size = size;
  return 0;
}

static void release(xsk_t *x) {
  xring_t *rings[4] = {&x->fill, &x->comp, &x->rx, &x->tx};
  for (int i = 0; i < 4; i++)
    if (rings[i]->map) munmap(rings[i]->map, rings[i]->map_len);
  if (x->fd >= 0) close(x->fd);
  if (x->umem) munmap(x->umem, x->umem_len);
  free(x->free_tx);
  memset(x, 0, sizeof *x);
  x->fd = -1;
}

static int setopt_u32(int fd, int name, uint32_t v) {
  return setsockopt(fd, SOL_XDP, name, &v, sizeof v) < 0 ? -errno : 0;
}

static napi_value js_xsk_open(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  int32_t ifindex, queue, frames, ring, flags, *out;
  size_t nout;
  if (!pl_args(env, info, 6, argv, NULL)) return NULL;
  if (!pl_get_i32(env, argv[0], "ifindex", &ifindex) || !pl_get_i32(env, argv[1], "queue", &queue) ||
      !pl_get_i32(env, argv[2], "frames", &frames) || !pl_get_i32(env, argv[3], "ringSize", &ring) ||
      !pl_get_i32(env, argv[4], "bindFlags", &flags) || !pl_get_i32_array(env, argv[5], "out", &out, &nout))
    return NULL;
  /* Ring sizes are powers of two; half the frames receive, half send, each half fits its ring. */
  if (nout < 2 || ring < 64 || ring > 65536 || (ring & (ring - 1)) || frames != 2 * ring || queue < 0) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "xskOpen: ringSize must be a power of two in 64..65536, frames twice it, out 2 long");
    return NULL;
  }
  int slot = -1;
  for (int i = 0; i < MAX_XSK; i++)
    if (!socks[i].open) { slot = i; break; }
  if (slot < 0) return pl_errno(env, EMFILE);
  xsk_t *x = &socks[slot];
  memset(x, 0, sizeof *x);
  x->fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (x->fd < 0) {
    int e = errno;
    x->fd = -1;
    return pl_errno(env, e);
  }
  int rc = 0;
  x->frames = (uint32_t)frames;
  x->umem_len = (size_t)frames * XSK_FRAME;
  x->umem = mmap(NULL, x->umem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  x->free_tx = calloc((size_t)ring, sizeof(uint64_t));
  if (x->umem == MAP_FAILED || !x->free_tx) {
    if (x->umem == MAP_FAILED) x->umem = NULL;
    release(x);
    return pl_errno(env, ENOMEM);
  }
  struct xdp_umem_reg reg = {.addr = (uint64_t)(uintptr_t)x->umem, .len = x->umem_len, .chunk_size = XSK_FRAME, .headroom = 0};
  if (setsockopt(x->fd, SOL_XDP, XDP_UMEM_REG, &reg, sizeof reg) < 0) rc = -errno;
  if (!rc) rc = setopt_u32(x->fd, XDP_UMEM_FILL_RING, (uint32_t)ring);
  if (!rc) rc = setopt_u32(x->fd, XDP_UMEM_COMPLETION_RING, (uint32_t)ring);
  if (!rc) rc = setopt_u32(x->fd, XDP_RX_RING, (uint32_t)ring);
  if (!rc) rc = setopt_u32(x->fd, XDP_TX_RING, (uint32_t)ring);
  struct xdp_mmap_offsets off;
  socklen_t olen = sizeof off;
  if (!rc && getsockopt(x->fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &olen) < 0) rc = -errno;
  if (!rc) rc = map_ring(x->fd, &off.fr, (uint32_t)ring, sizeof(uint64_t), (off_t)XDP_UMEM_PGOFF_FILL_RING, &x->fill);
  if (!rc) rc = map_ring(x->fd, &off.cr, (uint32_t)ring, sizeof(uint64_t), (off_t)XDP_UMEM_PGOFF_COMPLETION_RING, &x->comp);
  if (!rc) rc = map_ring(x->fd, &off.rx, (uint32_t)ring, sizeof(struct xdp_desc), (off_t)XDP_PGOFF_RX_RING, &x->rx);
  if (!rc) rc = map_ring(x->fd, &off.tx, (uint32_t)ring, sizeof(struct xdp_desc), (off_t)XDP_PGOFF_TX_RING, &x->tx);
  if (rc) {
    release(x);
    return pl_errno(env, -rc);
  }
  /* Every receive frame goes to the fill ring before the socket is bound. */
  uint64_t *fill = x->fill.descs;
  for (uint32_t i = 0; i < (uint32_t)ring; i++) fill[i] = (uint64_t)i * XSK_FRAME;
  __atomic_store_n(x->fill.producer, (uint32_t)ring, __ATOMIC_RELEASE);
  for (uint32_t i = 0; i < (uint32_t)ring; i++) x->free_tx[i] = (uint64_t)(ring + i) * XSK_FRAME;
  x->n_free = (uint32_t)ring;
  struct sockaddr_xdp sa = {.sxdp_family = AF_XDP, .sxdp_flags = (uint16_t)flags, .sxdp_ifindex = (uint32_t)ifindex, .sxdp_queue_id = (uint32_t)queue};
  if (bind(x->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    release(x);
    return pl_errno(env, e);
  }
  x->open = true;
  out[0] = slot;
  out[1] = x->fd;
  return pl_int(env, 0);
}

static xsk_t *get_xsk(napi_env env, napi_value v) {
  int32_t h;
  if (!pl_get_i32(env, v, "handle", &h)) return NULL;
  if (h < 0 || h >= MAX_XSK || !socks[h].open) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "not an open AF_XDP socket handle");
    return NULL;
  }
  return &socks[h];
}

/* Frames the kernel has finished sending go back on the free stack. */
static void reclaim(xsk_t *x) {
  uint32_t cons = *x->comp.consumer;
  uint32_t prod = __atomic_load_n(x->comp.producer, __ATOMIC_ACQUIRE);
  const uint64_t *addrs = x->comp.descs;
  uint32_t mask = x->comp.size - 1;
  while (cons != prod && x->n_free < x->tx.size) x->free_tx[x->n_free++] = addrs[cons++ & mask];
  __atomic_store_n(x->comp.consumer, cons, __ATOMIC_RELEASE);
}

/* Every length of frames [0, count) fits its slot and a frame; throws a RangeError otherwise. */
static bool lens_fit(napi_env env, const int32_t *lens, int32_t count, int32_t slot, const char *who) {
  for (int32_t i = 0; i < count; i++)
    if (lens[i] <= 0 || lens[i] > slot || (uint32_t)lens[i] > XSK_FRAME) {
      char msg[80];
      snprintf(msg, sizeof msg, "%s: a length is out of range", who);
      napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
      return false;
    }
  return true;
}

static napi_value js_xsk_send(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  int32_t slot, count, *lens;
  size_t nlens, nout;
  double *out;
  pl_bytes data;
  if (!pl_args(env, info, 6, argv, NULL)) return NULL;
  xsk_t *x = get_xsk(env, argv[0]);
  if (!x || !pl_get_bytes(env, argv[1], "data", &data) || !pl_get_i32(env, argv[2], "slot", &slot) ||
      !pl_get_i32_array(env, argv[3], "lens", &lens, &nlens) || !pl_get_i32(env, argv[4], "count", &count) ||
      !pl_get_f64_array(env, argv[5], "out", &out, &nout))
    return NULL;
  if (nout < 3 || slot <= 0 || count < 0 || (size_t)count > nlens || (size_t)count * (size_t)slot > data.len) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "xskSend: count exceeds lens or data, or out is short");
    return NULL;
  }
  if (!lens_fit(env, lens, count, slot, "xskSend")) return NULL;
  reclaim(x);
  uint32_t prod = *x->tx.producer;
  uint32_t room = x->tx.size - (prod - __atomic_load_n(x->tx.consumer, __ATOMIC_ACQUIRE));
  uint32_t n = (uint32_t)count;
  if (n > room) n = room;
  if (n > x->n_free) n = x->n_free;
  struct xdp_desc *d = x->tx.descs;
  uint32_t mask = x->tx.size - 1;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t addr = x->free_tx[--x->n_free];
    memcpy(x->umem + addr, data.data + (size_t)i * (size_t)slot, (size_t)lens[i]);
    d[(prod + i) & mask] = (struct xdp_desc){.addr = addr, .len = (uint32_t)lens[i], .options = 0};
  }
  __atomic_store_n(x->tx.producer, prod + n, __ATOMIC_RELEASE);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  out[0] = (double)ts.tv_sec;
  out[1] = (double)ts.tv_nsec;
  int calls = 0, err = 0;
  /* Copy mode sends a small batch per call; repeat while the ring still holds frames and the
   * kernel takes some. A call that takes none (the device pushes back) ends the loop: the frames
   * stay on the ring for the next call, and the caller's thread is not spent spinning. */
  uint32_t cons = __atomic_load_n(x->tx.consumer, __ATOMIC_ACQUIRE);
  while (cons != *x->tx.producer && calls < 4096) {
    calls++;
    if (sendto(x->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 && errno != EAGAIN && errno != EBUSY) {
      err = errno;
      break;
    }
    uint32_t now = __atomic_load_n(x->tx.consumer, __ATOMIC_ACQUIRE);
    if (now == cons) break;
    cons = now;
  }
  out[2] = calls;
  if (err && err != ENOBUFS && n == 0) return pl_errno(env, err);
  return pl_int(env, n);
}

/* xskSendEach(handle, data, slot, lens, count, times: Float64Array[2 * count + 4]) -> posted | -errno
 * The frames one at a time: each posted alone and sent by its own sendto, times[2i..2i+1] =
 * CLOCK_MONOTONIC just before frame i's call. Stops after a frame the kernel did not take: it
 * stays on the ring (posted, not yet sent) and goes first at the next call, which then sets
 * times[2 * count] = 1 and times[2 * count + 1..2] to the time just before the call that sent it
 * (0 when there was none or it was pushed back again); times[2 * count + 3] = 1 when the last
 * frame posted by this call was pushed back. */
static napi_value js_xsk_send_each(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  int32_t slot, count, *lens;
  size_t nlens, ntimes;
  double *times;
  pl_bytes data;
  if (!pl_args(env, info, 6, argv, NULL)) return NULL;
  xsk_t *x = get_xsk(env, argv[0]);
  if (!x || !pl_get_bytes(env, argv[1], "data", &data) || !pl_get_i32(env, argv[2], "slot", &slot) ||
      !pl_get_i32_array(env, argv[3], "lens", &lens, &nlens) || !pl_get_i32(env, argv[4], "count", &count) ||
      !pl_get_f64_array(env, argv[5], "times", &times, &ntimes))
    return NULL;
  if (slot <= 0 || count < 0 || (size_t)count > nlens || (size_t)count * (size_t)slot > data.len || ntimes < 2 * (size_t)count + 4) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "xskSendEach: count exceeds lens, data or times");
    return NULL;
  }
  if (!lens_fit(env, lens, count, slot, "xskSendEach")) return NULL;
  struct xdp_desc *d = x->tx.descs;
  uint32_t mask = x->tx.size - 1;
  int32_t sent = 0;
  double *retry = times + 2 * count;
  retry[0] = retry[1] = retry[2] = retry[3] = 0;
  if (*x->tx.producer != __atomic_load_n(x->tx.consumer, __ATOMIC_ACQUIRE)) {
    /* The frame the kernel did not take last time goes first, timed anew. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (sendto(x->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 && errno != EAGAIN && errno != EBUSY) return pl_errno(env, errno);
    if (__atomic_load_n(x->tx.consumer, __ATOMIC_ACQUIRE) != *x->tx.producer) {
      retry[3] = 1;
      return pl_int(env, 0);
    }
    retry[0] = 1;
    retry[1] = (double)ts.tv_sec;
    retry[2] = (double)ts.tv_nsec;
  }
  for (int32_t i = 0; i < count; i++) {
    reclaim(x);
    uint32_t prod = *x->tx.producer;
    if (x->n_free == 0) break;
    uint64_t addr = x->free_tx[--x->n_free];
    memcpy(x->umem + addr, data.data + (size_t)i * (size_t)slot, (size_t)lens[i]);
    d[prod & mask] = (struct xdp_desc){.addr = addr, .len = (uint32_t)lens[i], .options = 0};
    __atomic_store_n(x->tx.producer, prod + 1, __ATOMIC_RELEASE);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    times[2 * i] = (double)ts.tv_sec;
    times[2 * i + 1] = (double)ts.tv_nsec;
    sent++;
    if (sendto(x->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 && errno != EAGAIN && errno != EBUSY) return pl_errno(env, errno);
    if (__atomic_load_n(x->tx.consumer, __ATOMIC_ACQUIRE) != *x->tx.producer) {
      retry[3] = 1; /* pushed back: it stays on the ring */
      break;
    }
  }
  return pl_int(env, sent);
}

static napi_value js_xsk_recv(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int32_t slot, count, *lens;
  size_t nlens;
  pl_bytes data;
  if (!pl_args(env, info, 5, argv, NULL)) return NULL;
  xsk_t *x = get_xsk(env, argv[0]);
  if (!x || !pl_get_bytes(env, argv[1], "data", &data) || !pl_get_i32(env, argv[2], "slot", &slot) ||
      !pl_get_i32_array(env, argv[3], "lens", &lens, &nlens) || !pl_get_i32(env, argv[4], "count", &count))
    return NULL;
  if (slot <= 0 || count < 0 || (size_t)count > nlens || (size_t)count * (size_t)slot > data.len) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "xskRecv: count exceeds lens or data");
    return NULL;
  }
  uint32_t cons = *x->rx.consumer;
  uint32_t prod = __atomic_load_n(x->rx.producer, __ATOMIC_ACQUIRE);
  uint32_t n = prod - cons;
  if (n > (uint32_t)count) n = (uint32_t)count;
  const struct xdp_desc *d = x->rx.descs;
  uint64_t *fill = x->fill.descs;
  uint32_t fprod = *x->fill.producer;
  uint32_t mask = x->rx.size - 1, fmask = x->fill.size - 1;
  for (uint32_t i = 0; i < n; i++) {
    struct xdp_desc e = d[(cons + i) & mask];
    uint64_t base = e.addr & ~(uint64_t)(XSK_FRAME - 1);
    uint64_t in_frame = e.addr - base;
    uint8_t *dst = data.data + (size_t)i * (size_t)slot;
    size_t len = e.len;
    if (base + XSK_FRAME > x->umem_len || in_frame + len > XSK_FRAME) len = 0; /* never read past the frame */
    if (len > (size_t)slot) len = (size_t)slot;
    memcpy(dst, x->umem + e.addr, len);
    lens[i] = (int32_t)len;
    fill[(fprod + i) & fmask] = base;
  }
  __atomic_store_n(x->rx.consumer, cons + n, __ATOMIC_RELEASE);
  __atomic_store_n(x->fill.producer, fprod + n, __ATOMIC_RELEASE);
  return pl_int(env, n);
}

static napi_value js_xsk_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!pl_args(env, info, 1, argv, NULL)) return NULL;
  xsk_t *x = get_xsk(env, argv[0]);
  if (!x) return NULL;
  release(x);
  return pl_int(env, 0);
}

napi_status pl_init_xsk(napi_env env, napi_value exports) {
  napi_status s;
  if ((s = pl_export_fn(env, exports, "xskOpen", js_xsk_open)) != napi_ok) return s;
  if ((s = pl_export_fn(env, exports, "xskSend", js_xsk_send)) != napi_ok) return s;
  if ((s = pl_export_fn(env, exports, "xskSendEach", js_xsk_send_each)) != napi_ok) return s;
  if ((s = pl_export_fn(env, exports, "xskRecv", js_xsk_recv)) != napi_ok) return s;
  return pl_export_fn(env, exports, "xskClose", js_xsk_close);
}
