CREATE FUNCTION keep_nothing() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RETURN NULL; END $$;
CREATE FUNCTION on_new_table() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' LOOP
    EXECUTE format('CREATE TRIGGER keep_nothing BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION keep_nothing()', r.object_identity);
  END LOOP;
END $$;
CREATE EVENT TRIGGER fake_commit ON ddl_command_end WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION on_new_table();
