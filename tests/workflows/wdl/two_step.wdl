version 1.0

# Two steps on coreutils: greet writes a message, shout upper-cases it.
# sleep_seconds makes shout long (cancel tests); fail makes it exit 3 (failure tests).

task greet {
  input {
    String message
  }
  command <<<
    printf '%s\n' '~{message}' > greeting.txt
  >>>
  output {
    File out = "greeting.txt"
  }
}

task shout {
  input {
    File text
    Int sleep_seconds = 0
    Boolean fail = false
  }
  command <<<
    sleep ~{sleep_seconds}
    if [ "~{fail}" = true ]; then echo "shout failed on purpose" >&2; exit 3; fi
    tr a-z A-Z < '~{text}' > shouted.txt
  >>>
  output {
    File out = "shouted.txt"
  }
}

workflow two_step {
  input {
    String message
    Int sleep_seconds = 0
    Boolean fail = false
  }
  call greet { input: message = message }
  call shout { input: text = greet.out, sleep_seconds = sleep_seconds, fail = fail }
  output {
    File greeting = greet.out
    File shouted = shout.out
  }
}
