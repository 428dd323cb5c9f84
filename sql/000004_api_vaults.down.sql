DROP TABLE IF EXISTS api.vaults;
DROP FUNCTION IF EXISTS gate.touch_updated_at();
