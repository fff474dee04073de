version 1.1

# Says where it ran: the image (tests' flowdeck-test:bookworm) has coreutils only, no podman.
task where {
  input {
    String message
  }
  command <<<
    echo "message: ~{message}"
    if test -e /usr/bin/podman; then echo "where: host"; else echo "where: container"; fi
    head -1 /etc/os-release
    echo "network: $(ls /sys/class/net 2>/dev/null | tr '\n' ' ')"
  >>>
  output {
    File report = stdout()
  }
  runtime {
    container: "localhost/flowdeck-test:bookworm"
  }
}
