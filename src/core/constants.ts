/**
 * Linux ABI numbers used across pathlens (x86_64 / generic uapi values).
 * One place, named as in the kernel headers, so that every module speaks the same language.
 */

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_PACKET = 17;

export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;

export const IPPROTO_IP = 0;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_ICMPV6 = 58;

export const SOL_SOCKET = 1;
export const SOL_IP = 0;
export const SOL_IPV6 = 41;
export const SOL_PACKET = 263;

export const SO_ERROR = 4;
export const SO_RCVBUF = 8;
export const SO_SNDBUF = 7;
export const SO_BINDTODEVICE = 25;
export const SO_TIMESTAMPNS = 35; // SO_TIMESTAMPNS_OLD: struct timespec of the running ABI
export const SCM_TIMESTAMPNS = SO_TIMESTAMPNS;
export const SO_TIMESTAMPING = 37; // SO_TIMESTAMPING_OLD: struct scm_timestamping of the running ABI
export const SCM_TIMESTAMPING = SO_TIMESTAMPING;
/** A per-message id for the send timestamp (Linux 6.13); its data is a u32. */
export const SCM_TS_OPT_ID = 81;
// SO_TIMESTAMPING flags (linux/net_tstamp.h)
export const SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1;
export const SOF_TIMESTAMPING_SOFTWARE = 1 << 4;
export const SOF_TIMESTAMPING_OPT_ID = 1 << 7;
export const SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11;
/** Only report receive stamps when receive stamping was asked for (Linux 6.12). */
export const SOF_TIMESTAMPING_OPT_RX_FILTER = 1 << 17;
/** ee_info of a send timestamp taken when the device got the packet. */
export const SCM_TSTAMP_SND = 0;
export const SO_MARK = 36;
export const SO_RCVBUFFORCE = 33;
export const SO_SNDBUFFORCE = 32;
/** getsockopt: the socket's memory figures, u32[SK_MEMINFO_VARS]; [SK_MEMINFO_DROPS] counts the packets it dropped (a full receive buffer among them). */
export const SO_MEMINFO = 55;
export const SK_MEMINFO_DROPS = 8;

export const IP_TOS = 1;
export const IPV6_TCLASS = 67;
export const IP_TTL = 2;
export const IP_PKTINFO = 8;
export const IP_MTU_DISCOVER = 10;
export const IP_RECVERR = 11;
export const IP_RECVTTL = 12;
export const IP_RECVERR_RFC4884 = 26;
export const IP_MTU = 14;
export const IP_PMTUDISC_DONT = 0;
export const IP_PMTUDISC_DO = 2;
export const IP_PMTUDISC_PROBE = 3;

export const TCP_INFO = 11;
export const TCP_USER_TIMEOUT = 18;
export const SO_LINGER = 13;
/** struct tcp_info: tcpi_rtt (microseconds, u32) is at this offset. */
export const TCPI_RTT_OFFSET = 68;
export const TCPI_TOTAL_RETRANS_OFFSET = 100;

export const IPV6_RECVPKTINFO = 49;
export const IPV6_PKTINFO = 50;
export const IPV6_HOPLIMIT = 52;
export const IPV6_UNICAST_HOPS = 16;
export const IPV6_MTU_DISCOVER = 23;
export const IPV6_MTU = 24;
export const IPV6_PMTUDISC_PROBE = 3;
export const IPV6_RECVERR = 25;
export const IPV6_RECVERR_RFC4884 = 31;
export const IPV6_V6ONLY = 26;

export const PACKET_ADD_MEMBERSHIP = 1;
export const PACKET_AUXDATA = 8;
export const PACKET_VNET_HDR = 15;
export const PACKET_IGNORE_OUTGOING = 23;
export const PACKET_MR_PROMISC = 1;
export const ETH_P_ALL = 0x0003;

export const MSG_ERRQUEUE = 0x2000;
export const MSG_TRUNC = 0x20;
export const MSG_CTRUNC = 0x08;

export const SO_EE_ORIGIN_NONE = 0;
export const SO_EE_ORIGIN_LOCAL = 1;
export const SO_EE_ORIGIN_ICMP = 2;
export const SO_EE_ORIGIN_ICMP6 = 3;
export const SO_EE_ORIGIN_TIMESTAMPING = 4;

export const CLOCK_REALTIME = 0;
export const CLOCK_MONOTONIC = 1;
export const CLOCK_TAI = 11;

export const CLONE_NEWNET = 0x40000000;

/** libuv poll event bits. */
export const UV_READABLE = 1;
export const UV_WRITABLE = 2;
/** libuv's UV_EBADF: also what a uv_poll_t reports for POLLERR (a non-empty error queue). */
export const UV_EBADF = -9;

/** Sizes of the kernel structures crossing the boundary. */
export const SOCKADDR_IN_LEN = 16;
export const SOCKADDR_IN6_LEN = 28;
export const SOCKADDR_LL_LEN = 20;
export const SOCKADDR_STORAGE_LEN = 128;
export const SOCK_EXTENDED_ERR_LEN = 16;
export const CMSG_HDR_LEN = 16; // struct cmsghdr on LP64: size_t len, int level, int type
export const CMSG_ALIGN = 8;
export const VIRTIO_NET_HDR_LEN = 10;
