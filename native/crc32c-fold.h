/* CRC32C by carry-less multiplication on AVX-512 (crc32c-fold.c). */
#ifndef HORNBILL_CRC32C_FOLD_H
#define HORNBILL_CRC32C_FOLD_H

#include <stddef.h>
#include <stdint.h>

/* Bytes below which crc32c_fold is not used (it needs at least 256). */
#define CRC32C_FOLD_MINIMUM 256

/*
 * Prepares the constants and checks the folding against `reference` (the same register in,
 * the same register out) on a range of lengths. Returns 1 when the machine has AVX-512 with
 * VPCLMULQDQ and the check passed; crc32c_fold may be called only then.
 */
int crc32c_fold_init(uint32_t (*reference)(uint32_t crc, const uint8_t *data, size_t length));

/* Advances the CRC register `crc` (no inversions) over `length` >= CRC32C_FOLD_MINIMUM bytes. */
uint32_t crc32c_fold(uint32_t crc, const uint8_t *data, size_t length);

#endif
