// The operations a KMIP role can grant, by Vault's operation_* names. A Go
// test (ui_test.go) checks this list against kmip.OperationNames().
export const KMIP_OPERATIONS = [
  'activate', 'add_attribute', 'create', 'create_keypair', 'decrypt', 'delete_attribute', 'destroy',
  'discover_versions', 'encrypt', 'get', 'get_attribute_list', 'get_attributes', 'import', 'locate',
  'mac', 'mac_verify', 'modify_attribute', 'query', 'register', 'rekey', 'rekey_keypair', 'revoke',
  'rng_retrieve', 'rng_seed', 'sign', 'signature_verify',
];
