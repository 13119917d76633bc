/** The library's messages name its options (`namespace`, `key`); a CLI user knows flags. */
export function cliWording(message: string): string {
  return message
    .replace(/^(createOnce|run|reset): /, '')
    .replace(/^namespace must/, '--namespace must')
    .replace(/^nodeId must/, '--node-id must')
    .replace(/^key (must|is)/, '--key $1')
    .replace(/\.$/, '');
}
