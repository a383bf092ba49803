#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Echo suite (see echo_suite.sh) with the XDP program attached in generic (SKB) mode.
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/echo_suite.sh"
echo_suite skb
