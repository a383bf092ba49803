/* SPDX-License-Identifier: BSD-2-Clause */ /* placeholder until written */ typedef int paste_unused_xsk;
