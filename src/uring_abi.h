/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * uring_abi.h - kernel io_uring ABI constants that liburing 2.3 (Debian 12) lacks, with the values
 * of linux/io_uring.h. Shared by the io_uring transport (uring.c) and bench/ref-uring.c.
 */
#ifndef PASTE_URING_ABI_H
#define PASTE_URING_ABI_H

#include <liburing.h>

#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12) /* Linux 6.0 */
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13) /* Linux 6.1 */
#endif
#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif
#ifndef IORING_RECV_MULTISHOT
#define IORING_RECV_MULTISHOT (1U << 1)
#endif

#endif /* PASTE_URING_ABI_H */
