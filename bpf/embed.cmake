# SPDX-License-Identifier: BSD-2-Clause
# cmake -P script: turns the binary file IN into a C source OUT defining
#   const unsigned char SYM[]; const unsigned long SYM_len;
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" body "${body}")
file(WRITE ${OUT} "/* Generated from ${IN}; do not edit. */\n"
  "__attribute__((visibility(\"hidden\"))) const unsigned char ${SYM}[] = {\n${body}\n};\n"
  "__attribute__((visibility(\"hidden\"))) const unsigned long ${SYM}_len = ${len};\n")
