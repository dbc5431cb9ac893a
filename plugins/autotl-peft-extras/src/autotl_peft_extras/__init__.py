"""autotl plugin: PEFT methods beyond LoRA (``peft:ia3``, ``peft:dora``, ``peft:layernorm``)."""
