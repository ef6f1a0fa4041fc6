"""Safety in the experiment process: alarm limits, interlocks across instruments, safe states, and telling people.

Software rules that stop people, scripts and procedures from asking for harm and react to what the bridge sees;
they never replace a lab's hardware interlocks.
"""
