/* Compiler hints for hot paths, one definition for every folder (the
 * agent's allocation hooks, the capture and heap readers). Includes
 * nothing. */
#ifndef MH_UTIL_COMPILER_H
#define MH_UTIL_COMPILER_H

#define MH_LIKELY(x) __builtin_expect(!!(x), 1)
#define MH_UNLIKELY(x) __builtin_expect(!!(x), 0)

#endif
