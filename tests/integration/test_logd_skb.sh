#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# test_logd_skb: test_logd with the XDP program attached in generic (SKB) mode: the verdict must
# still reach user space in the metadata (no_meta 0), and everything test_logd checks must hold.
LOGD_XDP_MODE=skb LOGD_TEST_NAME=test_logd_skb exec bash "$(dirname "$0")/test_logd.sh"
