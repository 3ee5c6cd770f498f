/* Calls that overflow or are not thread-safe; use the alternatives named
 * (git's banned.h does the same). Included by every .c file via util.h. */
#ifndef MH_BANNED_H
#define MH_BANNED_H

#define MH_BANNED(func) sorry_##func##_is_banned_use_snprintf_or_mh_buf

#undef strcpy
#define strcpy(x, y) MH_BANNED(strcpy)
#undef strcat
#define strcat(x, y) MH_BANNED(strcat)
#undef sprintf
#define sprintf(...) MH_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) MH_BANNED(vsprintf)
#undef strtok
#define strtok(x, y) MH_BANNED(strtok)
#undef gets
#define gets(x) MH_BANNED(gets)

#endif
