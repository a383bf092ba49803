// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* placeholder: being written */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp") int paste_steer(struct xdp_md *ctx) { return XDP_PASS; }
char _license[] SEC("license") = "GPL";
