// Java's SunPKCS11 over the hsm-broker PKCS#11 module: lists the keystore's entries, then signs
// in a loop with the token's HMAC key (C_SignInit/C_Sign with CKM_SHA256_HMAC in the module) and
// checks each result against the first: the same key and message give the same MAC.
// usage: java -cp DIR HsmbSign PKCS11_CONFIG PIN ALIAS COUNT
import java.security.Key;
import java.security.KeyStore;
import java.security.Provider;
import java.security.Security;
import java.util.Arrays;
import java.util.Collections;
import javax.crypto.Mac;

public class HsmbSign {
  public static void main(String[] args) throws Exception {
    Provider p = Security.getProvider("SunPKCS11").configure(args[0]);
    Security.addProvider(p);
    KeyStore ks = KeyStore.getInstance("PKCS11", p);
    ks.load(null, args[1].toCharArray());
    for (String alias : Collections.list(ks.aliases())) System.out.println("alias=" + alias);
    Key key = ks.getKey(args[2], null);
    if (key == null) throw new IllegalStateException("no key " + args[2]);
    int count = Integer.parseInt(args[3]);
    byte[] first = null;
    int failures = 0;
    for (int i = 0; i < count; i++) {
      Mac mac = Mac.getInstance("HmacSHA256", p);
      mac.init(key);
      byte[] out = mac.doFinal("message".getBytes());
      if (first == null) first = out;
      else if (!Arrays.equals(first, out)) failures++;
    }
    System.out.println("signed=" + count);
    System.out.println("mac_len=" + first.length);
    StringBuilder hex = new StringBuilder();
    for (byte b : first) hex.append(String.format("%02x", b));
    System.out.println("mac_hex=" + hex);
    System.out.println("failures=" + failures);
  }
}
