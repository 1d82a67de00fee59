/* fuzz_check.h - FUZZ_CHECK(cond) for the targets that drive a C codec
 * directly (fuzz_ws.c, fuzz_httpreq.c): a broken invariant prints where
 * and aborts, so that libFuzzer keeps the input as a crash. */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                          \
  do {                                                                            \
    if (!(cond)) {                                                                \
      fprintf(stderr, "fuzz: %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
      abort();                                                                    \
    }                                                                             \
  } while (0)

#endif
