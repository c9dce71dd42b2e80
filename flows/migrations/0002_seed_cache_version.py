from django.db import migrations


def seed(apps, schema_editor):
    # The single row the definitions cache version lives in (flows/cache.py).
    apps.get_model("flows", "FlowCacheVersion").objects.get_or_create(pk=1, defaults={"version": 1})


class Migration(migrations.Migration):
    dependencies = [("flows", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
