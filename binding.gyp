{
  "targets": [
    {
      "target_name": "pathlens",
      "sources": [
        "native/addon.c",
        "native/sock.c",
        "native/mmsg.c",
        "native/poll.c",
        "native/misc.c",
        "native/bpf.c",
        "native/xsk.c"
      ],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "defines": ["NAPI_VERSION=8"],
      "libraries": ["-ldl"]
    }
  ]
}
