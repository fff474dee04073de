version 1.0

# Two tasks, coreutils only, no containers: write a greeting, then upper-case it.

workflow hello {
  input {
    String message = "Hello from flowdeck"
    Int times = 3
  }
  call greet { input: message = message, times = times }
  call shout { input: greeting = greet.greeting }
  output {
    File greeting = greet.greeting
    File shouted = shout.shouted
  }
}

task greet {
  input {
    String message
    Int times
  }
  # The message goes through a file, never into the shell command.
  File message_file = write_lines([message])
  command <<<
    for i in $(seq 1 ~{times}); do cat '~{message_file}'; done > greeting.txt
  >>>
  output {
    File greeting = "greeting.txt"
  }
}

task shout {
  input {
    File greeting
  }
  command <<<
    tr '[:lower:]' '[:upper:]' < '~{greeting}' > shouted.txt
  >>>
  output {
    File shouted = "shouted.txt"
  }
}
