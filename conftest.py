# The ssv2-stress plugin is registered through the `pytest11` entry point (ssv2_fixtures.plugin), so it
# works from any directory. Nothing else belongs here.
