from django.contrib import admin

from gateway.models import ModelAlias


@admin.register(ModelAlias)
class ModelAliasAdmin(admin.ModelAdmin):
    list_display = ("name", "model", "note")
    search_fields = ("name", "model")
