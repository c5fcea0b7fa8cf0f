/* READYNS_API marks what libreadyns.so exports (C and C++); everything else stays internal. */
#ifndef READYNS_EXPORT_H
#define READYNS_EXPORT_H

/* The shared library's version script (src/embed/readyns.map) is what actually decides; the
 * attribute keeps the API visible should the library be compiled with -fvisibility=hidden. */
#if defined(__GNUC__) || defined(__clang__)
#define READYNS_API __attribute__((visibility("default")))
#else
#define READYNS_API
#endif

#endif /* READYNS_EXPORT_H */
