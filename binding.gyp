{
  "targets": [
    {
      "target_name": "hornbill_native",
      "sources": ["native/crc32c.c", "native/crc32c-fold.c", "native/memory-alignment.c"],
      "cflags": ["-O3", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
