/** libzmq's numbers (zmq.h, libzmq 4.3.5 with the draft API): what this project uses, no more. */

/** Socket types (zmq.h). */
export const ZMQ_PAIR = 0;
export const ZMQ_PUB = 1;
export const ZMQ_SUB = 2;
export const ZMQ_REQ = 3;
export const ZMQ_REP = 4;
export const ZMQ_PULL = 7;
export const ZMQ_PUSH = 8;
export const ZMQ_XPUB = 9;
export const ZMQ_XSUB = 10;

/** Socket options (zmq.h) that the adaptor uses. */
export const ZMQ_SUBSCRIBE = 6;
export const ZMQ_UNSUBSCRIBE = 7;
export const ZMQ_SNDHWM = 23;
export const ZMQ_RCVHWM = 24;
export const ZMQ_RECONNECT_IVL = 18;
export const ZMQ_RECONNECT_IVL_MAX = 21;
export const ZMQ_LINGER = 17;
export const ZMQ_LAST_ENDPOINT = 32;
export const ZMQ_TCP_KEEPALIVE = 34;
export const ZMQ_TCP_KEEPALIVE_IDLE = 36;
export const ZMQ_IMMEDIATE = 39;
/** Draft (libzmq ≥ 4.3.3): distinct subscriptions an XPUB/PUB or XSUB holds now; read-only. */
export const ZMQ_TOPICS_COUNT = 116;
export const ZMQ_CURVE_SERVER = 47;
export const ZMQ_CURVE_PUBLICKEY = 48;
export const ZMQ_CURVE_SECRETKEY = 49;
export const ZMQ_CURVE_SERVERKEY = 50;
export const ZMQ_ZAP_DOMAIN = 55;
/** Draft option: refuse CURVE/PLAIN peers when no ZAP handler answers (fail closed). */
export const ZMQ_ZAP_ENFORCE_DOMAIN = 93;

/** Security mechanisms (ZMQ_MECHANISM values). */
/** int: TCP_USER_TIMEOUT on Linux: how long sent data may stay unacknowledged (or unsent behind
 * a zero window) before the kernel drops the connection, in ms (0: the kernel's ~15 min). */
export const ZMQ_TCP_MAXRT = 80;
/** int: bytes encoded into one write to a connection (default 8192). A draft option: the
 * zeromq package builds libzmq with the draft API. */
export const ZMQ_OUT_BATCH_SIZE = 102;
/** int: listen backlog of bound tcp/ipc endpoints (pending connections the kernel queues). */
export const ZMQ_BACKLOG = 19;

/** Bind on this already listening descriptor instead of making one (-1: make one). */
export const ZMQ_USE_FD = 89;
/** int64: largest inbound frame in bytes; a peer that sends a larger one is disconnected. -1: no limit. */
export const ZMQ_MAXMSGSIZE = 22;
/** int: how long a new connection may take to finish the ZMTP handshake, in ms (0: forever). */
export const ZMQ_HANDSHAKE_IVL = 66;
/** int: interval between ZMTP PINGs on each connection, in ms (0: no heartbeat). */
export const ZMQ_HEARTBEAT_IVL = 75;
/** int: the time-to-live sent in our PINGs: the peer drops us if it hears nothing that long (ms). */
export const ZMQ_HEARTBEAT_TTL = 76;
/** int: how long after a PING with no traffic back the connection is dropped, in ms. */
export const ZMQ_HEARTBEAT_TIMEOUT = 77;

/** Context options. */
export const ZMQ_IO_THREADS = 1;

/** Send/recv flags. */
export const ZMQ_DONTWAIT = 1;
export const ZMQ_SNDMORE = 2;

/** errno values libzmq reports that we act on. */
export const EAGAIN = 11;
export const EINTR = 4;
export const ETERM = 156384765;

/** IPv6 on tcp endpoints (also takes IPv4). */
export const ZMQ_IPV6 = 42;

/** Monitor event masks (zmq.h). */
export const ZMQ_EVENT_ALL = 0xffff;
export const ZMQ_EVENT_BIND_FAILED = 0x0010;
