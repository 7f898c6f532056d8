from django.db import models


class World(models.Model):
    """Table world, created and filled by the suite (bench/workload)."""

    randomnumber = models.IntegerField()

    class Meta:
        db_table = "world"
        managed = False
