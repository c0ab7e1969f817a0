// Java's SunPKCS11 over the hsm-broker PKCS#11 module (with HSM_BROKER_PKCS11_CERTS=1, so the
// keystore shows private keys): lists the entries, then signs in a loop with the private key of
// SIGN_ALIAS (SHA256withECDSA, C_Sign in the module), each signature verified by Java's own
// provider on the entry's certificate, and MACs with HMAC_ALIAS (HmacSHA256).
// usage: java -cp DIR HsmbSign PKCS11_CONFIG PIN SIGN_ALIAS HMAC_ALIAS COUNT
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Security;
import java.security.Signature;
import java.security.cert.Certificate;
import java.util.Collections;
import javax.crypto.Mac;
import javax.crypto.SecretKey;

public class HsmbSign {
  public static void main(String[] args) throws Exception {
    Provider p = Security.getProvider("SunPKCS11").configure(args[0]);
    Security.addProvider(p);
    KeyStore ks = KeyStore.getInstance("PKCS11", p);
    ks.load(null, args[1].toCharArray());
    for (String alias : Collections.list(ks.aliases())) System.out.println("alias=" + alias);
    PrivateKey key = (PrivateKey) ks.getKey(args[2], null);
    Certificate cert = ks.getCertificate(args[2]);
    SecretKey macKey = (SecretKey) ks.getKey(args[3], null);
    if (key == null || cert == null || macKey == null) throw new IllegalStateException("missing entries");
    int count = Integer.parseInt(args[4]);
    int failures = 0;
    for (int i = 0; i < count; i++) {
      byte[] message = ("message " + i).getBytes();
      Signature signer = Signature.getInstance("SHA256withECDSA", p);
      signer.initSign(key);
      signer.update(message);
      byte[] sig = signer.sign();
      Signature verifier = Signature.getInstance("SHA256withECDSA");  // Java's own EC, not the token
      if (verifier.getProvider() == p) throw new IllegalStateException("verifier must not be the token");
      verifier.initVerify(cert.getPublicKey());
      verifier.update(message);
      if (!verifier.verify(sig)) failures++;
    }
    Mac mac = Mac.getInstance("HmacSHA256", p);
    mac.init(macKey);
    byte[] out = mac.doFinal("message".getBytes());
    StringBuilder hex = new StringBuilder();
    for (byte b : out) hex.append(String.format("%02x", b));
    System.out.println("signed=" + count);
    System.out.println("failures=" + failures);
    System.out.println("mac_hex=" + hex);
  }
}
