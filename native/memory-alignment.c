/*
 * Where a Uint8Array's first byte lies relative to a 4096-byte boundary of the process's
 * memory, so that JavaScript can carve a view that starts on one: writes through a
 * descriptor opened with O_DIRECT (the layers a rebuild fills, storage/layer-file.ts) need
 * the memory aligned to the device's logical block, which JavaScript cannot ask for.
 *
 * Exposed to JavaScript through Node-API (see crc32c.c for the module):
 *   memoryAlignment(data: Uint8Array): number
 *     the address of data[0] modulo 4096; throws a TypeError (code INVALID_ARGUMENT) for
 *     anything but a Uint8Array.
 */
#include "memory-alignment.h"

#include <stdint.h>

#define ALIGNMENT 4096

napi_value js_memory_alignment(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_typedarray_type type;
  size_t length;
  void *data;
  napi_value array_buffer;
  size_t byte_offset;
  bool is_typed_array = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_is_typedarray(env, argv[0], &is_typed_array) != napi_ok || !is_typed_array ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &data, &array_buffer, &byte_offset) != napi_ok ||
      type != napi_uint8_array) {
    napi_throw_type_error(env, "INVALID_ARGUMENT", "memoryAlignment(data: Uint8Array)");
    return NULL;
  }
  napi_value result;
  napi_create_uint32(env, (uint32_t)((uintptr_t)data % ALIGNMENT), &result);
  return result;
}
