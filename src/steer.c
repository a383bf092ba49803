/* SPDX-License-Identifier: BSD-2-Clause */ /* being written */ typedef int paste_unused_steer;
