"""Networks and checkpoint loading for ExpGest for Blender (needs torch; the add-on never imports this)."""
