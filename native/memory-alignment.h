#ifndef HORNBILL_MEMORY_ALIGNMENT_H
#define HORNBILL_MEMORY_ALIGNMENT_H

#include <node_api.h>

/* memoryAlignment(data: Uint8Array): number — see memory-alignment.c. */
napi_value js_memory_alignment(napi_env env, napi_callback_info info);

#endif
