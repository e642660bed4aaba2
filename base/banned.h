/* banned.h: functions that are too easy to misuse are compile errors
 * (as in git). Included in every translation unit by the build. Use
 * snprintf, memcpy with explicit lengths, strtoll with checks instead. */
#ifndef DCR_BANNED_H
#define DCR_BANNED_H
#ifndef DCR_ALLOW_BANNED
#define DCR_BANNED(func) sorry_##func##_is_a_banned_function
#undef strcpy
#define strcpy(x, y) DCR_BANNED(strcpy)
#undef strcat
#define strcat(x, y) DCR_BANNED(strcat)
#undef sprintf
#define sprintf(...) DCR_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) DCR_BANNED(vsprintf)
#undef strtok
#define strtok(x, y) DCR_BANNED(strtok)
#undef atoi
#define atoi(x) DCR_BANNED(atoi)
#undef gets
#define gets(x) DCR_BANNED(gets)
#endif
#endif
