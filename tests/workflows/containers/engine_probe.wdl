version 1.1

# A task in the test image that tries the path given from inside its container, and stays
# a few seconds so that the test can look at what the engine (miniwdl) sees meanwhile.
workflow engine_probe {
  input {
    String secret_path
  }
  call in_box { input: secret_path = secret_path }
  output {
    File report = in_box.report
  }
}

task in_box {
  input {
    String secret_path
  }
  command <<<
    head -1 /etc/os-release
    if cat "~{secret_path}" >/dev/null 2>&1; then echo "in_container: READ"; else echo "in_container: DENIED"; fi
    sleep 4
    echo "container: done"
  >>>
  output {
    File report = stdout()
  }
  runtime {
    container: "localhost/flowdeck-test:bookworm"
  }
}
