/*
 * Hornbill's native CRC32C (Castagnoli), for block checksums and iSCSI digests.
 *
 * The SSE4.2 crc32 instruction has a latency of three cycles but can start one every
 * cycle, so one stream of data leaves two thirds of it idle. Here a buffer is cut into
 * three lanes that are checksummed at once; the lane results are joined by "shifting" a
 * CRC over the length of the lanes that follow it, a linear map over GF(2) applied with
 * four table lookups (the tables are built once, at load). Machines without SSE4.2 use a
 * byte-wise table.
 *
 * Exposed to JavaScript through Node-API:
 *   crc32c(data: Uint8Array, offset: number, length: number, seed = 0): number
 *     (seed: the CRC of the bytes before these, to checksum a concatenation in parts)
 *   crc32cBlocks(data: Uint8Array, offset: number, blockSize: number, blockCount: number,
 *                out: Uint32Array, outOffset: number, stride = blockSize): void
 *     (block i starts at offset + i * stride: records with a field between them, too)
 *   memoryAlignment(data: Uint8Array): number (memory-alignment.c)
 */
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cpuid.h>
#include <nmmintrin.h>

#include "crc32c-fold.h"
#include "memory-alignment.h"

#define POLYNOMIAL 0x82f63b78u  /* reflected CRC32C */
#define LANE 1360u              /* three lanes of 1360 bytes cover a 4 KiB block but 16 bytes */

static uint32_t byte_table[256];
static uint32_t shift_table[4][256]; /* applies LANE zero bytes to a CRC register */
static int have_sse42;
static int have_fold; /* AVX-512 with VPCLMULQDQ: crc32c-fold.c */
static uint32_t crc_bytes_table(uint32_t crc, const uint8_t *data, size_t length);

/* Multiplies a 32x32 GF(2) matrix (columns) by a vector. */
static uint32_t matrix_times(const uint32_t *matrix, uint32_t vector) {
  uint32_t sum = 0;
  for (int column = 0; vector != 0; column++, vector >>= 1) {
    if (vector & 1) sum ^= matrix[column];
  }
  return sum;
}

static void matrix_square(uint32_t *square, const uint32_t *matrix) {
  for (int column = 0; column < 32; column++) square[column] = matrix_times(matrix, matrix[column]);
}

/* The operator that advances a CRC register over `bytes` zero bytes, by repeated squaring. */
static void zeros_operator(uint32_t *result, size_t bytes) {
  uint32_t power[32], scratch[32];
  /* One zero bit: shift right, folding in the polynomial. */
  power[0] = POLYNOMIAL;
  for (int column = 1; column < 32; column++) power[column] = 1u << (column - 1);
  for (int step = 0; step < 3; step++) { /* 1 -> 2 -> 4 -> 8 bits: one zero byte */
    matrix_square(scratch, power);
    memcpy(power, scratch, sizeof power);
  }
  /* result = power^bytes, by binary exponentiation. */
  int have_result = 0;
  while (bytes != 0) {
    if (bytes & 1) {
      if (!have_result) {
        memcpy(result, power, sizeof power);
        have_result = 1;
      } else {
        for (int column = 0; column < 32; column++) scratch[column] = matrix_times(power, result[column]);
        memcpy(result, scratch, sizeof scratch);
      }
    }
    bytes >>= 1;
    if (bytes != 0) {
      matrix_square(scratch, power);
      memcpy(power, scratch, sizeof power);
    }
  }
}

static void build_tables(void) {
  for (uint32_t value = 0; value < 256; value++) {
    uint32_t crc = value;
    for (int bit = 0; bit < 8; bit++) crc = (crc & 1) ? (crc >> 1) ^ POLYNOMIAL : crc >> 1;
    byte_table[value] = crc;
  }
  uint32_t shift[32];
  zeros_operator(shift, LANE);
  for (uint32_t value = 0; value < 256; value++) {
    for (int byte = 0; byte < 4; byte++) shift_table[byte][value] = matrix_times(shift, value << (8 * byte));
  }
  unsigned int eax, ebx, ecx, edx;
  have_sse42 = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_SSE4_2) != 0;
  have_fold = have_sse42 && crc32c_fold_init(crc_bytes_table);
}

static inline uint32_t shift_lane(uint32_t crc) {
  return shift_table[0][crc & 0xff] ^ shift_table[1][(crc >> 8) & 0xff] ^ shift_table[2][(crc >> 16) & 0xff] ^
         shift_table[3][crc >> 24];
}

static uint32_t crc_bytes_table(uint32_t crc, const uint8_t *data, size_t length) {
  for (size_t index = 0; index < length; index++) crc = byte_table[(crc ^ data[index]) & 0xff] ^ (crc >> 8);
  return crc;
}

__attribute__((target("sse4.2"))) static uint32_t crc_register_hardware(uint32_t crc, const uint8_t *data, size_t length) {
  uint64_t lane0 = crc;
  /* Three lanes at a time while at least three lanes remain. */
  while (length >= 3 * LANE) {
    uint64_t lane1 = 0, lane2 = 0;
    for (size_t at = 0; at < LANE; at += 8) {
      uint64_t word0, word1, word2;
      memcpy(&word0, data + at, 8);
      memcpy(&word1, data + LANE + at, 8);
      memcpy(&word2, data + 2 * LANE + at, 8);
      lane0 = _mm_crc32_u64(lane0, word0);
      lane1 = _mm_crc32_u64(lane1, word1);
      lane2 = _mm_crc32_u64(lane2, word2);
    }
    /* CRC(A B) = shift(CRC(A)) ^ CRC'(B), where CRC' starts from a zero register. */
    lane0 = shift_lane((uint32_t)lane0) ^ (uint32_t)lane1;
    lane0 = shift_lane((uint32_t)lane0) ^ (uint32_t)lane2;
    data += 3 * LANE;
    length -= 3 * LANE;
  }
  while (length >= 8) {
    uint64_t word;
    memcpy(&word, data, 8);
    lane0 = _mm_crc32_u64(lane0, word);
    data += 8;
    length -= 8;
  }
  uint32_t result = (uint32_t)lane0;
  while (length > 0) {
    result = _mm_crc32_u8(result, *data++);
    length--;
  }
  return result;
}

/* CRC32C with the standard initial and final inversion, continuing from `seed` (0: a fresh CRC). */
static uint32_t crc32c(uint32_t seed, const uint8_t *data, size_t length) {
  uint32_t crc = seed ^ 0xffffffffu;
  if (have_fold && length >= CRC32C_FOLD_MINIMUM) crc = crc32c_fold(crc, data, length);
  else crc = have_sse42 ? crc_register_hardware(crc, data, length) : crc_bytes_table(crc, data, length);
  return crc ^ 0xffffffffu;
}

/* --- Node-API glue ------------------------------------------------------------------- */

static napi_value throw_type_error(napi_env env, const char *message) {
  napi_throw_type_error(env, "INVALID_ARGUMENT", message);
  return NULL;
}

static int get_bytes(napi_env env, napi_value value, uint8_t **data, size_t *length) {
  napi_typedarray_type type;
  size_t count;
  void *base;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, value, &type, &count, &base, &buffer, &offset) != napi_ok) return 0;
  if (type != napi_uint8_array) return 0;
  *data = base;
  *length = count;
  return 1;
}

static int get_index(napi_env env, napi_value value, size_t *result) {
  double number;
  if (napi_get_value_double(env, value, &number) != napi_ok) return 0;
  if (!(number >= 0) || number > 9007199254740991.0 || number != (double)(size_t)number) return 0;
  *result = (size_t)number;
  return 1;
}

static napi_value js_crc32c(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *data;
  size_t size, offset, length;
  uint32_t seed = 0;
  if (argc < 3 || !get_bytes(env, argv[0], &data, &size) || !get_index(env, argv[1], &offset) ||
      !get_index(env, argv[2], &length) || offset > size || length > size - offset ||
      (argc >= 4 && napi_get_value_uint32(env, argv[3], &seed) != napi_ok)) {
    return throw_type_error(env, "crc32c(data: Uint8Array, offset, length, seed?) with the range inside data");
  }
  napi_value result;
  napi_create_uint32(env, crc32c(seed, data + offset, length), &result);
  return result;
}

static napi_value js_crc32c_blocks(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *data;
  size_t size, offset, block_size, block_count, out_offset, stride;
  napi_typedarray_type out_type;
  size_t out_count;
  void *out_base;
  napi_value out_buffer;
  size_t out_byte_offset;
  if (argc < 6 || !get_bytes(env, argv[0], &data, &size) || !get_index(env, argv[1], &offset) ||
      !get_index(env, argv[2], &block_size) || !get_index(env, argv[3], &block_count) ||
      !get_index(env, argv[5], &out_offset) ||
      napi_get_typedarray_info(env, argv[4], &out_type, &out_count, &out_base, &out_buffer, &out_byte_offset) != napi_ok ||
      out_type != napi_uint32_array || block_size == 0 || offset > size ||
      out_offset > out_count || block_count > out_count - out_offset) {
    return throw_type_error(env, "crc32cBlocks(data, offset, blockSize, blockCount, out: Uint32Array, outOffset, stride?) out of range");
  }
  stride = block_size;
  napi_valuetype stride_type = napi_undefined;
  if (argc >= 7) napi_typeof(env, argv[6], &stride_type);
  if (stride_type != napi_undefined && (!get_index(env, argv[6], &stride) || stride < block_size)) {
    return throw_type_error(env, "crc32cBlocks: stride must be at least blockSize");
  }
  /* The last block must end inside data: offset + (count - 1) * stride + blockSize <= size. */
  if (block_count > 0 && (block_size > size - offset || (block_count - 1) > (size - offset - block_size) / stride)) {
    return throw_type_error(env, "crc32cBlocks(data, offset, blockSize, blockCount, out: Uint32Array, outOffset, stride?) out of range");
  }
  uint32_t *out = (uint32_t *)out_base + out_offset;
  for (size_t block = 0; block < block_count; block++) out[block] = crc32c(0, data + offset + block * stride, block_size);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  build_tables();
  napi_property_descriptor properties[] = {
      {"crc32c", NULL, js_crc32c, NULL, NULL, NULL, napi_default, NULL},
      {"crc32cBlocks", NULL, js_crc32c_blocks, NULL, NULL, NULL, napi_default, NULL},
      {"memoryAlignment", NULL, js_memory_alignment, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 3, properties);
  napi_value hardware;
  napi_get_boolean(env, have_sse42, &hardware);
  napi_set_named_property(env, exports, "hardware", hardware);
  napi_value folding;
  napi_get_boolean(env, have_fold, &folding);
  napi_set_named_property(env, exports, "folding", folding);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
