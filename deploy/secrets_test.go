package deploy

import (
	"path"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

const secretsDir = "/etc/statesync/secrets"

// secretFile is where a file statesync reads comes from: a Secret's key, or a service account
// token's audience, through a volume mounted read-only.
type secretFile struct {
	Secret, Key string
	Audience    string
}

// mountedFiles resolves every file of the projected and secret volumes that c mounts, by its path
// in the container. It fails on a mount that is not read-only, a volume mounted but not in the
// pod, and a file mode that lets others than the owner and the pod's group read it.
func mountedFiles(t *testing.T, pod corev1.PodSpec, c corev1.Container) map[string]secretFile {
	t.Helper()
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	files := map[string]secretFile{}
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			t.Errorf("container %s mounts volume %q, which the pod does not have (the API server refuses the pod)", c.Name, m.Name)
			continue
		}
		checkMode := func(mode *int32) {
			if mode == nil || (*mode != 0o400 && *mode != 0o440) {
				t.Errorf("volume %s: mode %v, want 0400 or 0440", v.Name, mode)
			}
		}
		switch {
		case v.Projected != nil:
			if !m.ReadOnly {
				t.Errorf("volume %s is mounted at %s without readOnly", m.Name, m.MountPath)
			}
			checkMode(v.Projected.DefaultMode)
			for _, s := range v.Projected.Sources {
				switch {
				case s.Secret != nil:
					if len(s.Secret.Items) == 0 {
						t.Errorf("volume %s projects all of Secret %s: want only the keys statesync reads", v.Name, s.Secret.Name)
					}
					for _, it := range s.Secret.Items {
						if it.Mode != nil {
							checkMode(it.Mode)
						}
						files[path.Join(m.MountPath, it.Path)] = secretFile{Secret: s.Secret.Name, Key: it.Key}
					}
				case s.ServiceAccountToken != nil:
					files[path.Join(m.MountPath, s.ServiceAccountToken.Path)] = secretFile{Audience: s.ServiceAccountToken.Audience}
				default:
					t.Errorf("volume %s: unexpected projected source %+v", v.Name, s)
				}
			}
		case v.Secret != nil:
			if !m.ReadOnly {
				t.Errorf("volume %s is mounted at %s without readOnly", m.Name, m.MountPath)
			}
			checkMode(v.Secret.DefaultMode)
		}
	}
	return files
}

// assertFile checks that want is what the container finds at file.
func assertFile(t *testing.T, files map[string]secretFile, file string, want secretFile) {
	t.Helper()
	got, ok := files[file]
	if !ok {
		var have []string
		for f := range files {
			have = append(have, f)
		}
		t.Errorf("no mounted file %s (have %v)", file, have)
		return
	}
	if got != want {
		t.Errorf("%s comes from %+v, want %+v", file, got, want)
	}
}

// noSecretInEnv fails when a variable of a container of the workloads takes a value from a Secret
// by reference, or when one of the secret values appears anywhere in the rendered text.
func noSecretInEnv(t *testing.T, docs manifests, rendered string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(rendered, s) {
			t.Errorf("the secret %q appears in the rendered manifests", s)
		}
	}
	for _, m := range docs {
		for _, c := range workloadOf(t, manifests{m}).Template.Spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					t.Errorf("%s container %s: %s comes from Secret %s as an environment value, want a file", m.Name, c.Name, e.Name, e.ValueFrom.SecretKeyRef.Name)
				}
			}
		}
	}
}

// properties parses STATESYNC_KAFKA_PROPERTIES.
func properties(t *testing.T, c corev1.Container) map[string]string {
	t.Helper()
	out := map[string]string{}
	if !hasEnv(c, "STATESYNC_KAFKA_PROPERTIES") {
		return out
	}
	for _, kv := range strings.Split(env(t, c, "STATESYNC_KAFKA_PROPERTIES").Value, ";") {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

// workloads returns the pod-owning objects only (for noSecretInEnv).
func workloads(docs manifests) manifests {
	var out manifests
	for _, m := range docs {
		if m.Kind == "Deployment" || m.Kind == "StatefulSet" {
			out = append(out, m)
		}
	}
	return out
}

// secureValues: every secret and certificate from an existing Secret, and the OIDC token.
func secureValues() object {
	return object{
		"kafka": object{
			"properties": object{"sasl.mechanism": "SCRAM-SHA-512"},
			"sasl":       object{"username": "statesync", "existingSecret": "kafka-creds", "existingSecretKey": "password"},
			"tls":        object{"existingSecret": "kafka-tls", "clientCertificate": true},
		},
		"mongo": object{
			"existingSecret": "mongo-creds", "existingSecretKey": "uri",
			"tls":       object{"existingSecret": "mongo-tls", "clientCertificate": true},
			"oidcToken": object{"enabled": true, "audience": "api://mongodb"},
		},
	}
}

func TestSecretsAreReadOnlyFiles(t *testing.T) {
	t.Parallel()
	modes := []struct {
		mode      string
		render    func(t *testing.T, values object) (manifests, string)
		container string
	}{
		{"standalone", func(t *testing.T, values object) (manifests, string) {
			return mustTemplateText(t, chartDir, "rel", merge(object{"kafka": object{"brokers": "kafka:9092"}, "mongo": object{"database": "codr"}}, values))
		}, "statesync"},
		{"sidecar (the example service chart)", func(t *testing.T, values object) (manifests, string) {
			buildExampleDeps(t)
			// The example names mongo.existingSecret: clear it where the case sets another source.
			if m, ok := values["mongo"].(object); ok && (m["uri"] != nil || m["uriFile"] != nil) {
				values = merge(values, object{"mongo": object{"existingSecret": ""}})
			}
			return mustTemplateText(t, exampleDir, "shop", object{"statesync": values})
		}, "statesync"},
	}
	for _, md := range modes {
		t.Run(md.mode+": existing Secrets and certificates are mounted read-only and their paths reach statesync", func(t *testing.T) {
			docs, out := md.render(t, secureValues())
			w := workloadOf(t, docs)
			c := container(t, w, md.container)
			files := mountedFiles(t, w.Template.Spec, c)
			noSecretInEnv(t, workloads(docs), out)

			assertEnv(t, c, map[string]string{
				"STATESYNC_MONGO_URI_FILE":           secretsDir + "/mongo-uri",
				"STATESYNC_KAFKA_SASL_PASSWORD_FILE": secretsDir + "/kafka-sasl-password",
				"STATESYNC_KAFKA_SASL_USERNAME":      "statesync",
			})
			assertFile(t, files, env(t, c, "STATESYNC_MONGO_URI_FILE").Value, secretFile{Secret: "mongo-creds", Key: "uri"})
			assertFile(t, files, env(t, c, "STATESYNC_KAFKA_SASL_PASSWORD_FILE").Value, secretFile{Secret: "kafka-creds", Key: "password"})

			props := properties(t, c)
			if props["security.protocol"] != "SASL_SSL" || props["sasl.mechanism"] != "SCRAM-SHA-512" {
				t.Errorf("properties %v: want security.protocol SASL_SSL (TLS and a SASL username) and the given mechanism", props)
			}
			for prop, want := range map[string]secretFile{
				"ssl.ca.location":          {Secret: "kafka-tls", Key: "ca.crt"},
				"ssl.certificate.location": {Secret: "kafka-tls", Key: "tls.crt"},
				"ssl.key.location":         {Secret: "kafka-tls", Key: "tls.key"},
			} {
				if !strings.HasPrefix(props[prop], secretsDir+"/") {
					t.Errorf("%s = %q, want a file under %s", prop, props[prop], secretsDir)
					continue
				}
				assertFile(t, files, props[prop], want)
			}
			assertFile(t, files, secretsDir+"/mongo-ca.crt", secretFile{Secret: "mongo-tls", Key: "ca.crt"})
			assertFile(t, files, secretsDir+"/mongo-client.pem", secretFile{Secret: "mongo-tls", Key: "tls-combined.pem"})
			assertFile(t, files, "/var/run/secrets/kubernetes.io/serviceaccount/token", secretFile{Audience: "api://mongodb"})
			if n := len(docs.ofKind("Secret")); n != 0 {
				t.Errorf("rendered %d Secrets: existing Secrets need none of the chart's own", n)
			}
		})

		t.Run(md.mode+": secrets given as values are stored in the chart's Secret and read from files, never seen in clear", func(t *testing.T) {
			const uri, password = "mongodb://u:Hunter2Hunter2@mongo:27017/", "KafkaP4ssw0rd"
			docs, out := md.render(t, object{
				"kafka": object{"sasl": object{"username": "statesync", "password": password}},
				"mongo": object{"uri": uri},
			})
			w := workloadOf(t, docs)
			c := container(t, w, md.container)
			files := mountedFiles(t, w.Template.Spec, c)
			noSecretInEnv(t, workloads(docs), out, "Hunter2Hunter2", password)
			s := one[*corev1.Secret](t, docs, "Secret")
			if string(s.Data["mongo-uri"]) != uri || string(s.Data["sasl-password"]) != password {
				t.Errorf("the chart's Secret holds %v", s.Data)
			}
			assertFile(t, files, env(t, c, "STATESYNC_MONGO_URI_FILE").Value, secretFile{Secret: s.Name, Key: "mongo-uri"})
			assertFile(t, files, env(t, c, "STATESYNC_KAFKA_SASL_PASSWORD_FILE").Value, secretFile{Secret: s.Name, Key: "sasl-password"})
			if w.Template.Annotations["checksum/statesync-secret"] == "" {
				t.Error("no checksum of the chart's Secret: a changed value would not restart the pods")
			}
		})
	}

	t.Run("server-only TLS: the CA alone, security.protocol SSL without SASL, an explicit protocol kept", func(t *testing.T) {
		docs := mustTemplate(t, chartDir, "rel", merge(minimal(), object{"kafka": object{"tls": object{"existingSecret": "kafka-ca", "caKey": "ca.pem"}}}))
		w := workloadOf(t, docs)
		c := container(t, w, "statesync")
		props := properties(t, c)
		if props["security.protocol"] != "SSL" || props["ssl.ca.location"] != secretsDir+"/kafka-ca.crt" {
			t.Errorf("properties %v", props)
		}
		if _, ok := props["ssl.key.location"]; ok {
			t.Error("ssl.key.location set without a client certificate")
		}
		assertFile(t, mountedFiles(t, w.Template.Spec, c), secretsDir+"/kafka-ca.crt", secretFile{Secret: "kafka-ca", Key: "ca.pem"})

		docs = mustTemplate(t, chartDir, "rel", merge(minimal(), object{"kafka": object{
			"tls":        object{"existingSecret": "kafka-tls", "caKey": "", "clientCertificate": true},
			"properties": object{"security.protocol": "ssl"},
		}}))
		props = properties(t, container(t, workloadOf(t, docs), "statesync"))
		if props["security.protocol"] != "ssl" || props["ssl.certificate.location"] == "" {
			t.Errorf("properties %v: want the given protocol kept and the client certificate", props)
		}
		if _, ok := props["ssl.ca.location"]; ok {
			t.Error("ssl.ca.location set with caKey empty (the system's CAs)")
		}
	})

	t.Run("a mongo.uri given as a value that names the mounted TLS files renders (plain or %2F-escaped)", func(t *testing.T) {
		for _, uri := range []string{
			"mongodb://u:p@db:27017/?tls=true&tlsCAFile=/etc/statesync/secrets/mongo-ca.crt&tlsCertificateKeyFile=/etc/statesync/secrets/mongo-client.pem",
			"mongodb://u:p@db:27017/?tls=true&tlsCAFile=%2Fetc%2Fstatesync%2Fsecrets%2Fmongo-ca.crt&tlsCertificateKeyFile=%2Fetc%2Fstatesync%2Fsecrets%2Fmongo-client.pem",
		} {
			mustTemplate(t, chartDir, "rel", merge(minimal(), object{"mongo": object{"uri": uri, "tls": object{"existingSecret": "mongo-tls", "clientCertificate": true}}}))
		}
	})

	t.Run("by default nothing but the chart's Secret is mounted, and no token", func(t *testing.T) {
		w := workloadOf(t, mustTemplate(t, chartDir, "rel", minimal()))
		if n := len(w.Template.Spec.Volumes); n != 1 {
			t.Errorf("%d volumes, want the one of the chart's Secret", n)
		}
		if w.Template.Spec.AutomountServiceAccountToken == nil || *w.Template.Spec.AutomountServiceAccountToken {
			t.Error("the API token is automounted")
		}
		files := mountedFiles(t, w.Template.Spec, container(t, w, "statesync"))
		if len(files) != 1 {
			t.Errorf("files %v, want only mongo-uri", files)
		}
	})
}

func TestSecretSettingsThatConflict(t *testing.T) {
	t.Parallel()
	assertRefused(t, []refused{
		{"two MongoDB URI sources", merge(minimal(), object{"mongo": object{"existingSecret": "mongo-creds"}}), "set only one of mongo.uri, mongo.existingSecret and mongo.uriFile (got mongo.uri, mongo.existingSecret)"},
		{"two SASL password sources", merge(minimal(), object{"kafka": object{"sasl": object{"username": "u", "password": "p", "passwordFile": "/s/p"}}}), "set only one of kafka.sasl.password, kafka.sasl.existingSecret and kafka.sasl.passwordFile (got kafka.sasl.password, kafka.sasl.passwordFile)"},
		{"an ssl.ca.location of one's own with kafka.tls", merge(minimal(), object{"kafka": object{"tls": object{"existingSecret": "t"}, "properties": object{"ssl.ca.location": "/x"}}}), "remove ssl.ca.location from kafka.properties"},
		{"a plaintext protocol with kafka.tls", merge(minimal(), object{"kafka": object{"tls": object{"existingSecret": "t"}, "properties": object{"security.protocol": "SASL_PLAINTEXT"}}}), "use SSL or SASL_SSL"},
		{"a Kafka client certificate without a Secret", merge(minimal(), object{"kafka": object{"tls": object{"clientCertificate": true}}}), "kafka.tls.existingSecret is empty"},
		{"a Kafka TLS Secret with nothing to mount", merge(minimal(), object{"kafka": object{"tls": object{"existingSecret": "t", "caKey": ""}}}), "nothing to mount"},
		{"a MongoDB client certificate without a Secret", merge(minimal(), object{"mongo": object{"tls": object{"clientCertificate": true}}}), "mongo.tls.existingSecret is empty"},
		{"a MongoDB TLS Secret with nothing to mount", merge(minimal(), object{"mongo": object{"tls": object{"existingSecret": "t", "caKey": ""}}}), "nothing to mount"},
		{"a mongo.uri that does not name the mounted TLS files", merge(minimal(), object{"mongo": object{"uri": "mongodb://u:p@db/?tls=true", "tls": object{"existingSecret": "t", "clientCertificate": true}}}),
			"add tlsCAFile=/etc/statesync/secrets/mongo-ca.crt&tlsCertificateKeyFile=/etc/statesync/secrets/mongo-client.pem to the URI"},
		{"a STATESYNC_MONGO_URI of one's own beside the chart's file", merge(minimal(), object{"extraEnv": []any{object{"name": "STATESYNC_MONGO_URI", "valueFrom": object{"secretKeyRef": object{"name": "m", "key": "uri"}}}}}), "use mongo.existingSecret"},
		{"a STATESYNC_KAFKA_SASL_PASSWORD of one's own beside a SASL secret", merge(minimal(), object{"kafka": object{"sasl": object{"username": "u", "existingSecret": "k"}}, "extraEnv": []any{object{"name": "STATESYNC_KAFKA_SASL_PASSWORD", "value": "x"}}}), "keep kafka.sasl.existingSecret"},
		{"an OIDC token without an audience", merge(minimal(), object{"mongo": object{"oidcToken": object{"enabled": true}}}), "mongo.oidcToken.audience"},
		{"a misspelt kafka.tls key (schema)", merge(minimal(), object{"kafka": object{"tls": object{"existingSecret": "t", "ca": "ca.crt"}}}), "ca"},
		{"a Secret key that cannot be one (schema)", merge(minimal(), object{"mongo": object{"tls": object{"existingSecret": "t", "caKey": "ca crt"}}}), "caKey"},
		{"a token shorter than the API server allows (schema)", merge(minimal(), object{"mongo": object{"oidcToken": object{"enabled": true, "audience": "a", "expirationSeconds": 60}}}), "expirationSeconds"},
		{"a relative secret file path (schema)", merge(minimal(), object{"mongo": object{"uri": "", "uriFile": "secrets/uri"}}), "uriFile"},
	})
}
