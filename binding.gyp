{
  "targets": [
    {
      "target_name": "hornbill_native",
      "sources": ["native/crc32c.c"],
      "cflags": ["-O3", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
