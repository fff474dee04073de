version 1.0

# Runs probe.sh (see there); args: the script first, then its arguments.
task probe {
  input {
    Array[String] args
  }
  command <<<
    sh ~{sep=" " args} > probe.txt
  >>>
  output {
    File out = "probe.txt"
  }
}

workflow probe_all {
  input {
    Array[String] args
  }
  call probe { input: args = args }
  output {
    File out = probe.out
  }
}
