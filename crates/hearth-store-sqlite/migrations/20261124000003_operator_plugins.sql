-- Plugins an operator adds to one workspace on top of its template's.
alter table workspaces add column operator_plugins text not null default '[]';
