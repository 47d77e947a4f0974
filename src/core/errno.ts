/**
 * errno values by name, once for the whole code base: Node's own table for the running system
 * (os.constants.errno), so no file writes a number. The native shim returns -errno; compare
 * with these.
 */
import { constants } from 'node:os';

export const { EACCES, EADDRINUSE, EAGAIN, EBADF, EBUSY, ECONNREFUSED, EEXIST, EINPROGRESS, EINVAL, EMSGSIZE, ENETDOWN, ENOBUFS, ENODEV, ENOENT, ENOSPC, ENXIO, EOPNOTSUPP, EPERM } = constants.errno;

/** Linux's "cannot access a needed shared library" (not in Node's table): the shim's "libbpf is unusable". */
export const ELIBACC = 79;
