"""Networks and checkpoint loading for ExpGest and its pretrained encoders (torch only, no bpy)."""
