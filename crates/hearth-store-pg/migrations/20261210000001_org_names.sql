-- Organisations are created by name (POST /orgs): a name names one org.
-- Existing deployments hold only the default org, so nothing conflicts.
create unique index orgs_name_idx on orgs (name);
